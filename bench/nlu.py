"""Parse latency and throughput of a Rasa NLU server, printed.

    .venv/bin/python bench/nlu.py                 # starts a server (trains first if needed)
    .venv/bin/python bench/nlu.py --url http://127.0.0.1:5005 -n 500 -c 8
    .venv/bin/python bench/nlu.py --project tests/data/nlu_mini/project

Latency is measured one request at a time (p50/p99 of a parse, not of a queue); throughput with
``-c`` requests in flight.  Requests go only to the given loopback server and stop after ``-n``.

A parse is mostly the sentence encoder's matrix products and the reading of its weights (21 MB for
3 layers) from memory, so the same model parses faster or slower as the machine does: on shared
cloud machines the single-core speed moved by a third within an hour.  The bench therefore also
prints what one core of this machine did right after the latency phase (``nlu/machine.py``), so that
two latency figures can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from frontdesk.core.settings import Settings
from nlu.auth import nlu_auth_token
from nlu.client import NLUClient
from nlu.eval import percentile
from nlu.machine import machine_speed_for
from nlu.serving import running_nlu_server

MESSAGES = [
    "@brand my order AB-12345 never arrived and tracking hasn't moved since monday",
    "how much is the premium plan for a team of 5?",
    "when does the launch event start tomorrow",
    "can I talk to a human please",
    "thanks, that fixed it!",
    "hi",
    "what's the weather like over there lol",
    "the app keeps crashing when I open settings https://t.co/abc",
    "is there a student discount on the annual subscription",
    "I was charged twice for order CD-55555, I want a refund",
    "are tickets still available for saturday's workshop?",
    "this is the third time I'm writing, get me a manager",
]


@contextlib.asynccontextmanager
async def _server(args: argparse.Namespace, settings: Settings) -> AsyncIterator[str]:
    if args.url:
        yield args.url
        return
    async with running_nlu_server(settings, log_name="rasa-nlu-bench.log") as url:
        yield url


async def _bench(args: argparse.Namespace) -> None:
    overrides = {"nlu_project_dir": Path(args.project).resolve()} if args.project else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    args.url = args.url or settings.nlu_url
    async with _server(args, settings) as url:
        client = NLUClient(url, timeout_s=30, retries=0, auth_token=nlu_auth_token(settings))
        async with client:
            status = await client.status()
            for text in MESSAGES[:5]:  # warm-up: first parses build TF graphs
                await client.parse(text)
            latencies = []
            for i in range(args.sequential):
                started = time.perf_counter()
                await client.parse(MESSAGES[i % len(MESSAGES)])
                latencies.append((time.perf_counter() - started) * 1000)
            machine = await asyncio.to_thread(machine_speed_for, url, settings)  # beside the latency
            semaphore = asyncio.Semaphore(args.concurrency)

            async def one(i: int) -> None:
                async with semaphore:
                    await client.parse(MESSAGES[i % len(MESSAGES)])

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(args.requests)))
            elapsed = time.perf_counter() - started
    print(f"server      {url}  model {status.get('model_file')}")
    print(f"machine     {os.cpu_count()} cores; {machine.describe()}")
    print(
        f"latency     p50 {percentile(latencies, 50):.1f} ms   p99 {percentile(latencies, 99):.1f} ms"
        f"   (n={len(latencies)}, one at a time)"
    )
    print(
        f"throughput  {args.requests / elapsed:.1f} parses/s   "
        f"({args.requests} parses, {args.concurrency} in flight, {elapsed:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default="", help="A running Rasa server (default: FRONTDESK_NLU_URL, else start one)."
    )
    parser.add_argument("--project", default="", help="Rasa project to train/serve when starting a server.")
    parser.add_argument("-n", "--requests", type=int, default=300, help="Parses for the throughput phase.")
    parser.add_argument(
        "-c", "--concurrency", type=int, default=8, help="Parses in flight (throughput phase)."
    )
    parser.add_argument(
        "--sequential", type=int, default=200, help="Parses timed one at a time (latency phase)."
    )
    asyncio.run(_bench(parser.parse_args()))


if __name__ == "__main__":
    main()
