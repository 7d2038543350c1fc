"""Issue 5 benchmark: the whole bot pipeline against the raw NLU it depends on.

N customer DMs are injected through the X emulator's control API (spread over `--customers` people, texts
the bot answers itself: FAQ, events, smalltalk).  Each is measured from injection to the moment the
emulator accepted the bot's reply (the outbox row's `sent_at`, matched through the DM's event id), so
the figure covers channel ingest, inbox, NLU, routing, the store and delivery.  Beside it, the same Rasa
server's raw `POST /model/parse` throughput at the same concurrency (measured just before and just after
the pipeline, averaged), and the ratio of the two.

Every part runs as its own process, as in production: Rasa, the X emulator (`frontdesk sandbox`, standing
in for X's servers), and the bot (`frontdesk run`, or `frontdesk desk` + N × `frontdesk worker` with
`--workers N`).  This process only injects and watches the store.

    python bench/pipeline.py                          # webhook mode (X pushes each DM), SQLite
    python bench/pipeline.py --mode poll              # DM polling at --poll-s instead
    python bench/pipeline.py --rate 50 --messages 1000   # latency at an arrival rate, not a burst
    python bench/pipeline.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench --workers 2 --json

Store: a throwaway SQLite file unless --database-url is given (give an empty database: it is migrated
here, and its tables are used as they are).  The per-process CPU seconds it prints show where the time
goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench import statements  # noqa: E402
from frontdesk.app.event_loop import run_event_loop  # noqa: E402
from frontdesk.core.settings import PROJECT_ROOT, Settings  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import Message, OutboxItem, OutboxStatus  # noqa: E402

TEXTS = (
    "where is my package, it is late",
    "when is the next webinar",
    "hello there",
    "how do I reset my password",
    "thanks",
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (from /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / _CLOCK_TICKS


async def raw_nlu_throughput(url: str, count: int, concurrency: int) -> float:
    """Parses per second straight at Rasa's /model/parse, `concurrency` requests in flight."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(TEXTS[i % len(TEXTS)])

    async def client(http: httpx.AsyncClient) -> None:
        while True:
            try:
                text = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            response = await http.post(f"{url}/model/parse", json={"text": text})
            response.raise_for_status()

    from nlu.auth import nlu_auth_token

    async with httpx.AsyncClient(timeout=30, params={"token": nlu_auth_token(Settings())}) as http:
        await http.post(f"{url}/model/parse", json={"text": "warm up"})
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


def _postgres_cpu_seconds() -> float:
    """CPU of this machine's PostgreSQL server processes (0 when it runs elsewhere): the store's share."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def _rasa_pid(nlu_url: str) -> int | None:
    """The local Rasa server answering at `nlu_url` (found by its port), to account for its CPU too."""
    port = nlu_url.rstrip("/").rsplit(":", 1)[-1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"rasa" in a for a in argv[:3]) and port.encode() in argv:
                return int(entry.name)
    return None


class _Processes:
    """The emulator and the bot processes, started with the same Python and stopped (SIGTERM) at exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}
        self.sql_counts: dict[str, Path] = {}
        self._stack = ExitStack()

    def start(
        self, name: str, args: list[str], env: dict[str, str], *, count_sql: bool = False
    ) -> subprocess.Popen[bytes]:
        """`count_sql`: run it through bench/statements.py, which counts its SQL by phase."""
        log = self._stack.enter_context(open(self.logs / f"{name}.log", "wb"))
        command = [sys.executable, "-m", "frontdesk", *args]
        if count_sql:
            self.sql_counts[name] = self.logs / f"{name}.sql.json"
            command = [sys.executable, str(Path(statements.__file__)), str(self.sql_counts[name]), "--", *args]
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log, cwd=PROJECT_ROOT)
        self.started[name] = process
        return process

    def sql(self) -> dict[str, int]:
        """The SQL counts of the counted processes so far, summed."""
        total: dict[str, int] = {}
        for path in self.sql_counts.values():
            for key, value in statements.read_counts(path).items():
                total[key] = total.get(key, 0) + value
        return total

    def check(self) -> None:
        for name, process in self.started.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def cpu(self) -> dict[str, float]:
        return {name: _cpu_seconds(p.pid) for name, p in self.started.items()}

    def stop(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.terminate()
        for process in self.started.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._stack.close()


async def _wait_http(processes: _Processes, url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            processes.check()
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s; see the logs")
            await asyncio.sleep(0.2)


def _bot_env(args: argparse.Namespace, database_url: str, nlu_url: str, sandbox_url: str) -> dict[str, str]:
    webhook = args.mode == "webhook"
    return {
        "FRONTDESK_DATABASE_URL": database_url,
        "FRONTDESK_NLU_URL": nlu_url,
        "FRONTDESK_X_API_BASE": sandbox_url,
        "FRONTDESK_X_WEBHOOK_ENABLED": "true" if webhook else "false",
        # Webhook mode: the pollers are only the backstop for dropped deliveries.
        "FRONTDESK_X_WEBHOOK_BACKSTOP_POLL_S": "30",
        "FRONTDESK_X_DMS_POLL_S": "30" if webhook else str(args.poll_s),
        "FRONTDESK_X_MENTIONS_POLL_S": "30",
        "FRONTDESK_X_POLL_FLOOR_S": "0.05",
        "FRONTDESK_CONTENT_DIR": str(PROJECT_ROOT / "content"),
        "FRONTDESK_BUSINESS_HOURS": "",
        "FRONTDESK_BOT_CONCURRENCY": str(args.concurrency),
        "FRONTDESK_LOG_LEVEL": "WARNING",
        "FRONTDESK_TELEGRAM_TOKEN": "",
    }


async def _start_bot(
    stack: AsyncExitStack, processes: _Processes, args: argparse.Namespace, database_url: str, nlu_url: str
) -> str:
    """Start the emulator and the bot; the emulator's base URL."""
    sandbox_port = _free_port()
    processes.start("sandbox", ["sandbox", "--port", str(sandbox_port)], {"FRONTDESK_LOG_LEVEL": "WARNING"})
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    await _wait_http(processes, f"{sandbox_url}/_sandbox/users")
    env = _bot_env(args, database_url, nlu_url, sandbox_url)
    count_sql = not args.no_sql_count
    http_port = _free_port()
    env["FRONTDESK_HTTP_PORT"] = str(http_port)
    if args.workers:
        processes.start("desk", ["desk"], env)
        for n in range(args.workers):
            processes.start(f"worker{n + 1}", ["worker"], {**env, "FRONTDESK_METRICS_PORT": "0"}, count_sql=count_sql)
    else:
        processes.start("bot", ["run"], env, count_sql=count_sql)
    await _wait_http(processes, f"http://127.0.0.1:{http_port}/healthz")
    if args.mode == "webhook":
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{sandbox_url}/_sandbox/webhook", json={"url": f"http://127.0.0.1:{http_port}/webhooks/x"}
            )
            response.raise_for_status()
    return sandbox_url


async def pipeline(
    args: argparse.Namespace, database_url: str, nlu_url: str, processes: _Processes
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        sandbox_url = await _start_bot(stack, processes, args, database_url, nlu_url)
        db = Database(database_url)
        stack.push_async_callback(db.dispose)
        # aiohttp, not httpx: the injector stands in for customers on other machines, so it should cost
        # this machine as little as possible (httpx took about twice the CPU per request).
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)))
        injected: dict[str, float] = {}  # DM event id -> wall-clock time of injection
        semaphore = asyncio.Semaphore(args.concurrency)
        per_customer = [asyncio.Lock() for _ in range(args.customers)]
        rasa_pid = _rasa_pid(nlu_url)
        cpu_before = processes.cpu()
        if rasa_pid is not None:
            cpu_before["rasa"] = _cpu_seconds(rasa_pid)
        bench_cpu_before = time.process_time()
        store_cpu_before = _postgres_cpu_seconds() if database_url.startswith("postgresql") else None
        sql_before = processes.sql()
        wall_start = time.time()

        async def inject(i: int) -> None:
            customer = i % args.customers
            # One customer's messages go out in order, as a person types them.
            if args.rate > 0:  # an arrival rate instead of all at once: latency without a self-made backlog
                await asyncio.sleep(max(0.0, wall_start + i / args.rate - time.time()))
            async with per_customer[customer], semaphore:
                started_at = time.time()
                async with http.post(
                    f"{sandbox_url}/_sandbox/dms",
                    json={"sender": f"bench{customer:04d}", "text": TEXTS[(i // args.customers) % len(TEXTS)]},
                ) as response:
                    response.raise_for_status()
                    injected[str((await response.json())["id"])] = started_at

        await asyncio.gather(*(inject(i) for i in range(args.messages)))
        inject_s = time.time() - wall_start
        stages: dict[str, tuple[float, float, float]] = {}
        latencies = await _wait_for_replies(db, injected, args.timeout, stages, processes)
        cpu_after = processes.cpu()
        await asyncio.sleep(1.0)  # the counted processes write their SQL counts every 0.5 s
        sql_after = processes.sql()
        if rasa_pid is not None:
            cpu_after["rasa"] = _cpu_seconds(rasa_pid)
        cpu_after["bench (injector, watcher)"] = time.process_time() - bench_cpu_before
        async with http.get(f"{sandbox_url}/_sandbox/webhook") as response:
            deliveries = (await response.json()).get("deliveries", [])
        failed_deliveries = [d for d in deliveries if d.get("status") != 200]
        end = max(injected[k] + v for k, v in latencies.items()) if latencies else time.time()
        return {
            "answered": len(latencies),
            "elapsed_s": end - wall_start,
            "latencies_s": list(latencies.values()),
            "replied_at": sorted(injected[k] + v for k, v in latencies.items()),
            "stages_s": list(stages.values()),
            "inject_s": inject_s,
            "cpu_s": {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after},
            "store_server_cpu_s": (
                None if store_cpu_before is None else _postgres_cpu_seconds() - store_cpu_before
            ),
            "sql_per_message": statements.per_message(sql_before, sql_after, len(latencies)),
            "sql_statements_per_message": statements.statements_per_message(sql_before, sql_after, len(latencies)),
            "webhook_failures": len(failed_deliveries),
            "webhook_failure_sample": failed_deliveries[:3],
        }


async def _wait_for_replies(
    db: Database,
    injected: dict[str, float],
    timeout_s: float,
    stages: dict[str, tuple[float, float, float]],
    processes: _Processes,
) -> dict[str, float]:
    """Latency per injected DM: its answer's sent_at minus the injection time."""
    deadline = time.monotonic() + timeout_s
    latencies: dict[str, float] = {}
    pending: dict[int, Any] = {}  # inbound message id -> its answer's sent_at
    watermark = 0  # every answer row with an id up to here has been sent and collected
    collected: set[int] = set()  # answer rows past the watermark already counted
    while time.monotonic() < deadline:
        processes.check()
        # Only rows past the watermark: a watcher that re-read the whole outbox every tick would steal
        # the CPU the pipeline is being measured on.  Ids are allocated at insert and rows are sent out
        # of order, so the watermark stops at the first answer not sent yet.
        async with db.session() as session:
            answers = (
                await session.execute(
                    select(
                        OutboxItem.id, OutboxItem.idempotency_key, OutboxItem.status, OutboxItem.sent_at
                    ).where(
                        OutboxItem.id > watermark,  # type: ignore[operator]
                        OutboxItem.idempotency_key.like("answer:%"),  # type: ignore[attr-defined]
                    ).order_by(OutboxItem.id)  # type: ignore[arg-type]
                )
            ).all()
            contiguous = True
            for row in answers:
                sent = row.status == OutboxStatus.sent and row.sent_at is not None
                if not sent:
                    contiguous = False
                    continue
                if row.id not in collected:
                    pending[int(row.idempotency_key.split(":", 1)[1])] = row.sent_at
                if contiguous:
                    watermark = row.id
                    collected.discard(row.id)
                else:
                    collected.add(row.id)
            if pending:
                inbound = (await session.execute(
                    select(Message.id, Message.platform_message_id, Message.created_at, Message.handled_at).where(
                        Message.id.in_(list(pending)),  # type: ignore[union-attr]
                    )
                )).all()
            else:
                inbound = []
        for row in inbound:
            sent_at = pending[row.id]
            if row.platform_message_id not in injected or row.handled_at is None:
                continue
            at = injected[row.platform_message_id]
            latencies[row.platform_message_id] = sent_at.timestamp() - at
            stages[row.platform_message_id] = (
                row.created_at.timestamp() - at,
                row.handled_at.timestamp() - row.created_at.timestamp(),
                sent_at.timestamp() - row.handled_at.timestamp(),
            )
            del pending[row.id]
        if len(latencies) >= len(injected):
            return latencies
        await asyncio.sleep(0.2)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1200)
    parser.add_argument("--customers", type=int, default=200,
                        help="distinct customers; each one's DMs are sent (and must be answered) in order")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="conversations the bot handles at once (FRONTDESK_BOT_CONCURRENCY), and the "
                             "concurrency of the raw NLU measurement")
    parser.add_argument("--mode", choices=("webhook", "poll"), default="webhook",
                        help="how DMs reach the bot: X's Account Activity webhook, or polling every --poll-s")
    parser.add_argument("--poll-s", type=float, default=0.1, help="DM poll interval in --mode poll")
    parser.add_argument("--workers", type=int, default=0,
                        help="0: one `frontdesk run`; N: `frontdesk desk` + N `frontdesk worker` processes")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="inject at this many DMs/s (default 0: all at once, which measures throughput)")
    parser.add_argument("--nlu-url", default="", help="a running Rasa server; default: train/start one")
    parser.add_argument("--project", type=Path, default=None, help="Rasa project to train (default: settings)")
    parser.add_argument("--taxonomy", type=Path, default=None)
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-sql-count", action="store_true",
                        help="start the bot without bench/statements.py: its CPU figure without the counter's "
                             "own cost (about 0.2-0.4 ms per DM); the SQL figures are then empty")
    args = parser.parse_args()
    # uvloop, as the services run: the injector stands in for customers elsewhere, so it should take as
    # little of this machine's CPU as it can.
    run_event_loop(_main(args))


async def _main(args: argparse.Namespace) -> None:
    from nlu.serving import running_nlu_server
    from storage.migrate import open_database

    overrides: dict[str, Any] = {}
    if args.project:
        overrides["nlu_project_dir"] = args.project.resolve()
        overrides["taxonomy_path"] = (args.taxonomy or args.project.parent / "taxonomy.yml").resolve()
    base = Settings(**overrides)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        migrated = await open_database(database_url, auto_upgrade=True)
        await migrated.dispose()
        processes = _Processes(Path(tmp))
        try:
            async with AsyncExitStack() as stack:
                progress = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
                nlu_url = args.nlu_url or await stack.enter_async_context(
                    running_nlu_server(base, port=None, progress=progress)
                )
                # Raw Rasa is measured right before and right after the pipeline, each time with the
                # machine to itself, and the two averaged: this machine's speed drifts by 10-20% from
                # minute to minute, and one measurement on one side made the ratio jump with it.
                raw_count = max(args.messages, 200)
                raw_before = await raw_nlu_throughput(nlu_url, raw_count, args.concurrency)
                result = await pipeline(args, database_url, nlu_url, processes)
                processes.stop()
                raw_after = await raw_nlu_throughput(nlu_url, raw_count, args.concurrency)
        finally:
            processes.stop()
    result["raw_before_after"] = (raw_before, raw_after)
    _report(args, database_url, result, (raw_before + raw_after) / 2)


def _steady_throughput(replied_at: list[float]) -> float | None:
    """Replies per second between the 10th and the 90th percentile reply: the rate once the pipeline is full.

    A burst first has to be ingested before the first parse can start, and its last conversations drain
    one by one; over 1,200 DMs those two ends are about a tenth of the run.  The whole-run figure
    (`throughput_per_s`) keeps them; this one shows the sustained rate beside it.
    """
    if len(replied_at) < 20:
        return None
    low, high = round(0.1 * (len(replied_at) - 1)), round(0.9 * (len(replied_at) - 1))
    span = replied_at[high] - replied_at[low]
    return (high - low) / span if span > 0 else None


def _report(args: argparse.Namespace, database_url: str, result: dict[str, Any], raw: float) -> None:
    latencies_ms = [s * 1000 for s in result["latencies_s"]]
    throughput = result["answered"] / result["elapsed_s"] if result["elapsed_s"] > 0 else 0.0
    answered = max(1, result["answered"])
    report: dict[str, Any] = {
        "messages": args.messages,
        "mode": args.mode,
        "store": database_url.split("+")[0].split(":")[0],
        "workers": args.workers,
        "rate_per_s": args.rate or None,
        "throughput_per_s": round(throughput, 2),
        "raw_nlu_parses_per_s": round(raw, 2),
        "raw_nlu_before_after": [round(r, 2) for r in result["raw_before_after"]],
        "ratio": round(throughput / raw, 3) if raw else None,
        "steady_throughput_per_s": None,
        "steady_ratio": None,
        "p50_ms": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
        "p99_ms": round(_percentile(latencies_ms, 0.99), 1) if latencies_ms else None,
        "cpu_ms_per_message": {k: round(v * 1000 / answered, 2) for k, v in result["cpu_s"].items()},
        "sql_per_message": result["sql_per_message"],
        "sql_statements_per_message": result["sql_statements_per_message"],
    }
    steady = _steady_throughput(result["replied_at"]) if not args.rate else None
    if steady is not None:
        report["steady_throughput_per_s"] = round(steady, 2)
        report["steady_ratio"] = round(steady / raw, 3) if raw else None
    if result["store_server_cpu_s"] is not None:
        report["cpu_ms_per_message"]["postgres"] = round(result["store_server_cpu_s"] * 1000 / answered, 2)
    if result["answered"] < args.messages:
        report["unanswered"] = args.messages - result["answered"]
    if result["webhook_failures"]:  # X does not retry: the backstop poll picks these up, late
        report["webhook_failures"] = result["webhook_failures"]
    if args.json:
        print(json.dumps(report))
        return
    how = f"at {args.rate:g}/s" if args.rate else "all at once"
    print(f"pipeline ({args.mode}, {report['store']}, "
          f"{f'{args.workers} workers' if args.workers else 'frontdesk run'}): "
          f"{result['answered']}/{args.messages} DMs injected {how} answered in {result['elapsed_s']:.1f}s "
          f"({report['throughput_per_s']}/s) over {args.customers} customers; "
          f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms")
    before, after = report["raw_nlu_before_after"]
    print(f"raw NLU: {report['raw_nlu_parses_per_s']} parses/s at concurrency {args.concurrency} "
          f"(mean of {before} before and {after} after the pipeline); pipeline/raw ratio {report['ratio']}")
    if report["steady_throughput_per_s"] is not None:
        print(f"  steady (10th to 90th percentile reply): {report['steady_throughput_per_s']}/s, "
              f"ratio {report['steady_ratio']}")
    print(f"  injecting the {args.messages} DMs took {result['inject_s']:.1f}s")
    stages = result["stages_s"]
    if stages:
        names = ("ingest (injected -> recorded)", "route (recorded -> handled)", "deliver (handled -> sent)")
        for i, name in enumerate(names):
            print(f"  {name}: p50 {statistics.median(s[i] for s in stages) * 1000:.0f} ms")
    cpu = ", ".join(f"{k} {v} ms" for k, v in report["cpu_ms_per_message"].items())
    print(f"  CPU per message: {cpu} (with PostgreSQL on this machine, its server's too)")
    print(f"  SQL per message (the bot's processes): {statements.format_per_message(report['sql_per_message'])}")
    print("  most frequent: " + "; ".join(f"{k} {v}" for k, v in report["sql_statements_per_message"].items()))
    if "rasa" in result["cpu_s"] and result["elapsed_s"] > 0:
        busy = result["cpu_s"]["rasa"] / result["elapsed_s"]
        print(f"  Rasa was busy {busy:.0%} of one core during the run (it serves one request at a time)")
    if result["webhook_failures"]:
        print(f"  webhook deliveries that failed: {result['webhook_failures']}, e.g. {result['webhook_failure_sample']}")


if __name__ == "__main__":
    main()
