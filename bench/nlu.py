"""Parse latency and throughput of a Rasa NLU server, printed.

    .venv/bin/python bench/nlu.py                 # starts a server (trains first if needed)
    .venv/bin/python bench/nlu.py --url http://127.0.0.1:5005 -n 500 -c 8
    .venv/bin/python bench/nlu.py --project tests/data/nlu_mini/project

Latency is measured one request at a time (p50/p99 of a parse, not of a queue); throughput with
``-c`` requests in flight.  Requests go only to the given loopback server and stop after ``-n``.

A parse is mostly the sentence encoder's matrix products and the reading of its weights (21 MB for
3 layers) from memory, so the same model parses faster or slower as the machine does: on shared
cloud machines the single-core speed moved by a third within an hour.  The bench therefore also
prints what one core of this machine did just before (float32 matrix products of the encoder's
shape, in the Rasa venv with its BLAS settings, and a 64 MB memory read), so that two latency
figures can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from frontdesk.settings import Settings
from nlu.client import NLUClient
from nlu.eval import percentile
from nlu.runtime import ensure_rasa_venv, rasa_env, running_nlu_server
from nlu.taxonomy import Taxonomy

# One core's float32 matrix-product rate at the encoder's shape (a 1536x384 weight times a 34-token
# tweet) and its memory read rate, in the Rasa venv (its numpy, its OpenBLAS kernels).
_MACHINE_SPEED = r"""
import json, time
import numpy as np
from threadpoolctl import threadpool_limits
rng = np.random.default_rng(0)
weight, tokens = rng.random((1536, 384), np.float32), rng.random((34, 384), np.float32)
big = np.ones(16 * 1024 * 1024, np.float32)
with threadpool_limits(1, "blas"):
    for _ in range(100):
        weight @ tokens.T
    samples = []
    for _ in range(1000):
        started = time.perf_counter(); weight @ tokens.T; samples.append(time.perf_counter() - started)
samples.sort()
reads = []
for _ in range(20):
    started = time.perf_counter(); big.sum(); reads.append(time.perf_counter() - started)
reads.sort()
gflops = 2 * 1536 * 384 * 34 / samples[500] / 1e9
print(json.dumps({"gflops": gflops, "read_gbs": big.nbytes / reads[10] / 1e9}))
"""

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


def _machine_speed(settings: Settings) -> str:
    """One core's matrix-product and memory read rates, as Rasa's numpy sees them."""
    venv = ensure_rasa_venv(settings)
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _MACHINE_SPEED],
        capture_output=True,
        text=True,
        env=rasa_env(settings.nlu_project_dir, settings),
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        return f"(speed not measured: {out.stderr.strip().splitlines()[-1:]})"
    speed = json.loads(out.stdout.strip().splitlines()[-1])
    return (
        f"one core: {speed['gflops']:.0f} GFLOP/s float32 matrix products of the encoder's shape, "
        f"{speed['read_gbs']:.1f} GB/s reading 64 MB"
    )


async def _bench(args: argparse.Namespace) -> None:
    overrides = {"nlu_project_dir": Path(args.project).resolve()} if args.project else {}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    args.url = args.url or settings.nlu_url
    machine = _machine_speed(settings)
    async with _server(args, settings) as url:
        # Category routing is not what is measured: an empty taxonomy keeps the bench independent of it.
        async with NLUClient(url, timeout_s=30, retries=0, taxonomy=Taxonomy(intents={})) as client:
            status = await client.status()
            for text in MESSAGES[:5]:  # warm-up: first parses build TF graphs
                await client.parse(text)
            latencies = []
            for i in range(args.sequential):
                started = time.perf_counter()
                await client.parse(MESSAGES[i % len(MESSAGES)])
                latencies.append((time.perf_counter() - started) * 1000)
            semaphore = asyncio.Semaphore(args.concurrency)

            async def one(i: int) -> None:
                async with semaphore:
                    await client.parse(MESSAGES[i % len(MESSAGES)])

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(args.requests)))
            elapsed = time.perf_counter() - started
    print(f"server      {url}  model {status.get('model_file')}")
    print(f"machine     {os.cpu_count()} cores; {machine}")
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
