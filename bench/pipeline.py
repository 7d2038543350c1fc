"""Issue 5 benchmark: the whole bot pipeline against the raw NLU it depends on.

N customer DMs are injected through the X emulator's control API (spread over `--customers` people, texts
the bot answers itself: FAQ, events, smalltalk).  Each is measured from injection to the moment the
emulator accepted the bot's reply (the outbox row's `sent_at`, matched through the DM's event id), so
the figure covers channel ingest, inbox, NLU, routing, the store and delivery.  Beside it, the same Rasa
server's raw `POST /model/parse` throughput at the same concurrency, and the ratio of the two.

    python bench/pipeline.py                       # trains/starts Rasa from settings (nlu/project)
    python bench/pipeline.py --nlu-url http://127.0.0.1:5005 --messages 400 --json
    python bench/pipeline.py --project tests/data/nlu_mini/project --database-url postgresql+asyncpg://...

The pollers are poked on each injection (as an X webhook would wake them), so poll intervals do not
dominate the latency.  Store: a throwaway SQLite file unless --database-url is given (tables are used
as-is; give an empty, migrated database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from sqlalchemy import select  # noqa: E402

from frontdesk.run import started  # noqa: E402
from frontdesk.settings import PROJECT_ROOT, Settings  # noqa: E402
from sandbox.server import running_sandbox  # noqa: E402
from storage.models import Message, OutboxItem, OutboxStatus  # noqa: E402

TEXTS = (
    "where is my package, it is late",
    "when is the next webinar",
    "hello there",
    "how do I reset my password",
    "thanks",
)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


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

    async with httpx.AsyncClient(timeout=30) as http:
        await http.post(f"{url}/model/parse", json={"text": "warm up"})
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


def _record_pages_in_one_transaction(channel: Any) -> None:
    """--batched-ingest: what the X pollers do once they call `record_inbound_many` (a page per commit).

    bot/channels/x/ still records one message per transaction; this swaps the pollers' `_record_all`
    for the batched store function so the bench can show the difference before the channel adopts it.
    """
    from storage.actions import record_inbound_many

    for poller in getattr(channel, "pollers", []):

        async def _record_all(messages: Any, poller: Any = poller) -> int:
            results = await record_inbound_many(poller.db, messages) if messages else []
            new = sum(1 for r in results if r.is_new)
            poller.recorded += new
            if new:
                poller.wake()
            return new

        poller._record_all = _record_all


async def pipeline(
    settings_for: Any,
    messages: int,
    customers: int,
    timeout_s: float,
    *,
    batched_ingest: bool = False,
    rate: float = 0.0,
) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(running_sandbox())
        settings = settings_for(sandbox.base_url)
        running = await stack.enter_async_context(started(settings, say=lambda m: None, with_http=False))
        if batched_ingest:
            _record_pages_in_one_transaction(running.channel)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        injected: dict[str, float] = {}  # DM event id -> wall-clock time of injection
        semaphore = asyncio.Semaphore(customers)
        per_customer: list[asyncio.Lock] = [asyncio.Lock() for _ in range(customers)]

        wall_start = time.time()

        async def inject(i: int) -> None:
            customer = i % customers
            # One customer's messages go out in order, as a person types them.
            if rate > 0:  # an arrival rate instead of all at once: latency without a self-made backlog
                await asyncio.sleep(max(0.0, wall_start + i / rate - time.time()))
            async with per_customer[customer], semaphore:
                started_at = time.time()
                response = await http.post(
                    f"{sandbox.base_url}/_sandbox/dms",
                    json={"sender": f"bench{customer:04d}", "text": TEXTS[(i // customers) % len(TEXTS)]},
                )
                response.raise_for_status()
                injected[str(response.json()["id"])] = started_at
                running.channel.poke()

        await asyncio.gather(*(inject(i) for i in range(messages)))
        inject_s = time.time() - wall_start
        stages: dict[str, tuple[float, float, float]] = {}
        latencies = await _wait_for_replies(running.db, injected, timeout_s, stages)
        end = max(injected[k] + v for k, v in latencies.items()) if latencies else time.time()
        return {
            "messages": messages,
            "answered": len(latencies),
            "elapsed_s": end - wall_start,
            "latencies_s": list(latencies.values()),
            "stages_s": list(stages.values()),
            "inject_s": inject_s,
            "worker": running.worker.stats.__dict__ if running.worker else {},
        }


async def _wait_for_replies(
    db: Any, injected: dict[str, float], timeout_s: float, stages: dict[str, tuple[float, float, float]]
) -> dict[str, float]:
    """Latency per injected DM: its answer's sent_at minus the injection time."""
    deadline = time.monotonic() + timeout_s
    latencies: dict[str, float] = {}
    while time.monotonic() < deadline:
        async with db.session() as session:
            sent = (
                await session.execute(
                    select(OutboxItem.idempotency_key, OutboxItem.sent_at).where(
                        OutboxItem.status == OutboxStatus.sent,
                        OutboxItem.idempotency_key.like("answer:%"),  # type: ignore[attr-defined]
                    )
                )
            ).all()
            inbound = {
                row.id: row
                for row in (await session.execute(
                    select(Message.id, Message.platform_message_id, Message.created_at, Message.handled_at).where(
                        Message.platform_message_id.in_(list(injected))  # type: ignore[union-attr]
                    )
                )).all()
            }
        for key, sent_at in sent:
            row = inbound.get(int(key.split(":", 1)[1]))
            if row is not None and sent_at is not None and row.handled_at is not None:
                at = injected[row.platform_message_id]
                latencies[row.platform_message_id] = sent_at.timestamp() - at
                stages[row.platform_message_id] = (
                    row.created_at.timestamp() - at,
                    row.handled_at.timestamp() - row.created_at.timestamp(),
                    sent_at.timestamp() - row.handled_at.timestamp(),
                )
        if len(latencies) >= len(injected):
            return latencies
        await asyncio.sleep(0.2)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--customers", type=int, default=20, help="distinct customers (= NLU concurrency)")
    parser.add_argument("--nlu-url", default="", help="a running Rasa server; default: train/start one")
    parser.add_argument("--project", type=Path, default=None, help="Rasa project to train (default: settings)")
    parser.add_argument("--taxonomy", type=Path, default=None)
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite file")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="inject at this many DMs/s (default 0: all at once, which measures throughput)")
    parser.add_argument("--poll-s", type=float, default=0.5, help="X DM poll interval (pokes cut it short)")
    parser.add_argument("--batched-ingest", action="store_true",
                        help="pollers record each page in one transaction (storage.actions.record_inbound_many)")
    args = parser.parse_args()
    asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> None:
    from nlu.runtime import running_nlu_server

    overrides: dict[str, Any] = {}
    if args.project:
        overrides["nlu_project_dir"] = args.project.resolve()
        overrides["nlu_taxonomy_path"] = (args.taxonomy or args.project.parent / "taxonomy.yml").resolve()
    base = Settings(**overrides)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        async with AsyncExitStack() as stack:
            progress = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
            nlu_url = args.nlu_url or await stack.enter_async_context(
                running_nlu_server(base, port=None, progress=progress)
            )

            def settings_for(sandbox_url: str) -> Settings:
                return base.model_copy(update={
                    "database_url": database_url, "nlu_url": nlu_url, "x_api_base": sandbox_url,
                    "x_consumer_key": None, "x_consumer_secret": None, "x_access_token": None,
                    "x_access_token_secret": None, "x_dms_poll_s": args.poll_s, "x_mentions_poll_s": 5.0,
                    "x_poll_floor_s": 0.05, "content_dir": PROJECT_ROOT / "content", "business_hours": "",
                    "bot_concurrency": args.customers,
                })

            result = await pipeline(
                settings_for, args.messages, args.customers, args.timeout, batched_ingest=args.batched_ingest,
                rate=args.rate,
            )
            raw = await raw_nlu_throughput(nlu_url, max(args.messages, 100), args.customers)
    latencies_ms = [s * 1000 for s in result["latencies_s"]]
    throughput = result["answered"] / result["elapsed_s"] if result["elapsed_s"] > 0 else 0.0
    report = {
        "messages": args.messages,
        "throughput_per_s": round(throughput, 2),
        "raw_nlu_parses_per_s": round(raw, 2),
        "ratio": round(throughput / raw, 3) if raw else None,
        "p50_ms": round(statistics.median(latencies_ms), 1) if latencies_ms else None,
        "p99_ms": round(_percentile(latencies_ms, 0.99), 1) if latencies_ms else None,
    }
    if result["answered"] < args.messages:
        report["unanswered"] = args.messages - result["answered"]
    if args.json:
        print(json.dumps(report))
        return
    print(f"pipeline: {result['answered']}/{args.messages} DMs answered in {result['elapsed_s']:.1f}s "
          f"({report['throughput_per_s']}/s) over {args.customers} customers; "
          f"latency p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms")
    print(f"raw NLU: {report['raw_nlu_parses_per_s']} parses/s at concurrency {args.customers}; "
          f"pipeline/raw ratio {report['ratio']}")
    print(f"  injecting the {args.messages} DMs took {result['inject_s']:.1f}s")
    stages = result["stages_s"]
    if stages:
        names = ("ingest (injected -> recorded)", "route (recorded -> handled)", "deliver (handled -> sent)")
        for i, name in enumerate(names):
            print(f"  {name}: p50 {statistics.median(s[i] for s in stages) * 1000:.0f} ms")
    print(f"store: {database_url.split('://')[0]}; batched ingest: {args.batched_ingest}; worker: {result['worker']}")


if __name__ == "__main__":
    main()
