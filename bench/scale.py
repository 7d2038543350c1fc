"""Issue 8 benchmarks: `frontdesk worker` processes on PostgreSQL, against the raw NLU they depend on.

    python bench/scale.py                               # 1, 2, 4 workers x 1, 2 NLU servers (Rasa started here)
    python bench/scale.py --messages 400 --customers 80 --workers 1,2,4 --nlu 1,2
    python bench/scale.py --nlu-url http://a:5005 --nlu-url http://b:5005      # use running Rasa servers
    python bench/scale.py --soak                         # 5,000 messages / 500 conversations, 2 workers killed

Throughput mode: for each (NLU servers, workers) pair, a fresh PostgreSQL database and X emulator; N DMs
are recorded into the inbox (as the DM poller would, spread over --customers conversations) while the
workers run; each message is timed from being recorded to the emulator accepting the bot's reply (the
outbox row's `sent_at`).  Beside it, the raw `POST /model/parse` throughput of the same NLU servers,
measured in the same run, and the ratio pipeline / raw.  Worker i talks to NLU server i mod K.

Soak mode: the same with 5,000 messages over 500 conversations and 3 workers; when a third and two
thirds of the messages are handled, a worker is SIGKILLed and a new one started.  At the end the script
checks and prints: every message handled, in order per conversation, every outbox row sent once and
exactly the emulator's DMs (bench/cluster.py `verify`).  Exit code 1 if anything is off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import select

from bench.cluster import (
    TEXTS,
    Cluster,
    create_pg_database,
    drop_pg_database,
    free_port,
    make_customers,
    problems,
    record_dms,
    verify,
    wait_until_done,
)
from frontdesk.core.settings import Settings
from nlu.auth import nlu_auth_token
from sandbox.server import running_sandbox
from storage.db import Database
from storage.models import OutboxItem, OutboxStatus


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def raw_parse_throughput(urls: list[str], count: int, concurrency: int) -> float:
    """Parses/s straight at the servers' /model/parse, `concurrency` requests in flight spread over them."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def client(http: httpx.AsyncClient, url: str) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            (await http.post(f"{url}/model/parse", json={"text": TEXTS[i % len(TEXTS)]})).raise_for_status()

    token = {"token": nlu_auth_token(Settings())}  # what the servers started here (or FRONTDESK_NLU_AUTH_TOKEN) use
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency), params=token) as http:
        for url in urls:
            await http.post(f"{url}/model/parse", json={"text": "warm up"})
        start = time.perf_counter()
        await asyncio.gather(*(client(http, urls[i % len(urls)]) for i in range(concurrency)))
        return count / (time.perf_counter() - start)


async def _latencies(db: Database, injected: dict[int, float]) -> list[float]:
    async with db.session() as session:
        rows = (await session.execute(
            select(OutboxItem.idempotency_key, OutboxItem.sent_at).where(OutboxItem.status == OutboxStatus.sent)
        )).all()
    out = []
    for key, sent_at in rows:
        if key and key.startswith("answer:") and sent_at is not None:
            mid = int(key.split(":", 1)[1])
            if mid in injected:
                out.append(sent_at.timestamp() - injected[mid])
    return out


async def one_run(nlu_urls: list[str], workers: int, messages: int, customers: int, tmp: Path,
                  concurrency: int, prefill: bool = False) -> dict[str, Any]:
    url = await create_pg_database()
    db = Database(url)
    try:
        async with running_sandbox() as sandbox, Cluster(url, sandbox.base_url, nlu_urls, tmp / f"w{workers}n{len(nlu_urls)}",
                                                         concurrency=concurrency) as cluster:
            people = await make_customers(sandbox.base_url, customers)
            if prefill:  # the backlog is there before the workers start: measures draining it
                injected = await record_dms(db, people, messages)
            for i in range(workers):
                await cluster.start_worker(f"w{i}")
            await cluster.wait_ready()
            baseline = _worker_usage(cluster)["worker_cpu_s"]  # start-up (imports, connecting) not counted
            start = time.time()
            if not prefill:
                injected = await record_dms(db, people, messages)
            inject_s = time.time() - start
            end = await wait_until_done(db, timeout_s=600)
            latencies = await _latencies(db, injected)
            report = await verify(db, sandbox.base_url)
            drain = await _drain_rate(db)
            usage = _worker_usage(cluster)
            usage["worker_cpu_s"] = round(usage["worker_cpu_s"] - baseline, 1)
            usage["pg_connections_per_worker"] = round(await _pg_connections(url) / workers, 1)
    finally:
        await db.dispose()
        await drop_pg_database(url)
    elapsed = end - start
    return {
        "nlu_servers": len(nlu_urls), "workers": workers, "messages": messages, "answered": len(latencies),
        "inject_s": round(inject_s, 2), "elapsed_s": round(elapsed, 2),
        "throughput_per_s": round(messages / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.5) * 1000), "p99_ms": round(_percentile(latencies, 0.99) * 1000),
        "drain_per_s": drain, "prefill": prefill, **usage,
        "worker_cpu_ms_per_msg": round(usage["worker_cpu_s"] * 1000 / messages, 1),
        "problems": problems(report),
    }


def _worker_usage(cluster: Cluster) -> dict[str, float]:
    """CPU seconds of all workers together and the largest resident memory (Linux /proc)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    cpu, rss = 0.0, 0.0
    for worker in cluster.workers.values():
        try:
            fields = Path(f"/proc/{worker.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick
            for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = max(rss, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return {"worker_cpu_s": round(cpu, 1), "worker_rss_mb": round(rss)}


async def _pg_connections(url: str) -> int:
    import asyncpg

    from bench.cluster import PG_ADMIN_URL

    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        return int(await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                                        url.rsplit("/", 1)[1]))
    finally:
        await admin.close()


async def _drain_rate(db: Database) -> float:
    """Messages handled per second between the first message handled and the last reply sent (store clock)."""
    from sqlalchemy import func

    from storage.models import Direction, Message

    async with db.session() as session:
        first, handled = (await session.execute(
            select(func.min(Message.handled_at), func.count()).where(
                Message.direction == Direction.inbound, Message.handled_at.is_not(None))  # type: ignore[union-attr]
        )).one()
        last = (await session.execute(select(func.max(OutboxItem.sent_at)))).scalar_one()
    if first is None or last is None or last <= first:
        return float("nan")
    return round(handled / (last - first).total_seconds(), 1)


async def soak(nlu_urls: list[str], workers: int, messages: int, customers: int, tmp: Path, concurrency: int,
               kills: int) -> dict[str, Any]:
    url = await create_pg_database()
    db = Database(url)
    killed: list[str] = []
    try:
        async with running_sandbox() as sandbox, Cluster(url, sandbox.base_url, nlu_urls, tmp / "soak",
                                                         concurrency=concurrency) as cluster:
            people = await make_customers(sandbox.base_url, customers)
            for i in range(workers):
                await cluster.start_worker(f"w{i}")
            await cluster.wait_ready()
            start = time.time()
            injecting = asyncio.create_task(record_dms(db, people, messages))
            for k in range(kills):
                threshold = messages * (k + 1) / (kills + 1)
                while await _handled(db) < threshold:
                    await asyncio.sleep(0.2)
                # An original worker each time (not the replacement just started), busy mid-run.
                victim = min(cluster.workers, key=lambda n: (n.startswith("r"), n))
                cluster.kill(victim)
                killed.append(f"{victim} at {await _handled(db)} handled")
                print(f"soak: SIGKILLed {victim} after {await _handled(db)} messages handled", file=sys.stderr)
                await asyncio.sleep(2.0)
                await cluster.start_worker(f"r{k}")
            await injecting
            end = await wait_until_done(db, timeout_s=900)
            report = await verify(db, sandbox.base_url)
    finally:
        await db.dispose()
        await drop_pg_database(url)
    return {"messages": messages, "conversations": customers, "workers": workers, "killed": killed,
            "elapsed_s": round(end - start, 1), **report, "problems": problems(report)}


async def _handled(db: Database) -> int:
    from sqlalchemy import func

    from storage.models import Direction, Message

    async with db.session() as session:
        return int((await session.execute(
            select(func.count()).select_from(Message).where(
                Message.direction == Direction.inbound, Message.handled_at.is_not(None))  # type: ignore[union-attr]
        )).scalar_one())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (throughput mode)")
    parser.add_argument("--nlu", default="1,2", help="comma-separated NLU server counts")
    parser.add_argument("--nlu-url", action="append", default=[], help="use this running Rasa (repeatable)")
    parser.add_argument("--concurrency", type=int, default=8, help="FRONTDESK_BOT_CONCURRENCY of each worker")
    parser.add_argument("--raw-parses", type=int, default=400)
    parser.add_argument("--soak", action="store_true", help="5,000 messages, 500 conversations, 2 workers killed")
    parser.add_argument("--soak-workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--prefill", action="store_true",
                        help="record all messages before the workers start (measures draining a backlog)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    nlu_counts = [int(n) for n in args.nlu.split(",")]
    worker_counts = [int(n) for n in args.workers.split(",")]

    async with AsyncExitStack() as stack:
        urls = list(args.nlu_url)
        if len(urls) < max(nlu_counts):
            from nlu.serving import running_nlu_server

            settings = Settings()
            for i in range(max(nlu_counts) - len(urls)):
                urls.append(await stack.enter_async_context(
                    running_nlu_server(settings, port=free_port(), log_name=f"rasa-bench-{i}.log")))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="frontdesk-scale-")))

        if args.soak:
            result = await soak(urls[: max(nlu_counts)], args.soak_workers, args.messages or 5000,
                                args.customers or 500, tmp, args.concurrency, args.kills)
            print(json.dumps(result) if args.json else _soak_text(result))
            return 1 if result["problems"] else 0

        results: list[dict[str, Any]] = []
        for k in nlu_counts:
            raw = await raw_parse_throughput(urls[:k], args.raw_parses, concurrency=8 * k)
            for n in worker_counts:
                row = await one_run(urls[:k], n, args.messages or 400, args.customers or 80, tmp, args.concurrency,
                                    prefill=args.prefill)
                row["raw_parses_per_s"] = round(raw, 1)
                row["ratio"] = round(row["throughput_per_s"] / raw, 3)
                results.append(row)
                print(_row_text(row) if not args.json else json.dumps(row), flush=True)
        bad = [r for r in results if r["problems"]]
        return 1 if bad else 0


def _row_text(r: dict[str, Any]) -> str:
    return (f"NLU x{r['nlu_servers']}  workers {r['workers']}: {r['throughput_per_s']:6.1f} msg/s  "
            f"raw parse {r['raw_parses_per_s']:6.1f}/s  ratio {r['ratio']:.3f}  p50 {r['p50_ms']} ms  "
            f"p99 {r['p99_ms']} ms  drain {r['drain_per_s']} msg/s  worker CPU {r['worker_cpu_ms_per_msg']} ms/msg, "
            f"RSS {r['worker_rss_mb']} MB, {r['pg_connections_per_worker']} PG conns/worker  ({r['answered']}/{r['messages']} answered, injected in {r['inject_s']} s, "
            f"problems: {r['problems'] or 'none'})")


def _soak_text(r: dict[str, Any]) -> str:
    lines = [(f"soak: {r['messages']} messages over {r['conversations']} conversations, {r['workers']} workers, "
              f"killed: {', '.join(r['killed'])}; done in {r['elapsed_s']} s")]
    lines.append(f"  inbound recorded {r['inbound']}, handled {r['handled']}, handled out of order "
                 f"{r['handled_out_of_order']}")
    lines.append(f"  outbox rows {r['outbox_rows']}, sent {r['outbox_sent']}, not sent {r['outbox_not_sent']}, "
                 f"duplicate keys {r['duplicate_outbox_keys']}, retried {r['outbox_retried_rows']}")
    lines.append(f"  emulator DMs {r['emulator_dms']}, duplicated {r['emulator_duplicate_dms']}, "
                 f"without an outbox row {r['emulator_dms_without_row']}, rows missing at the emulator "
                 f"{r['sent_rows_missing_in_emulator']}, replies out of order {r['replies_out_of_order']}")
    lines.append("  OK: every message handled once and in order, every reply sent once" if not r["problems"]
                 else f"  PROBLEMS: {r['problems']}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
