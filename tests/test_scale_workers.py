"""Issue 8: several `frontdesk worker` processes on one PostgreSQL database, one SIGKILLed mid-run.

Real processes (python -m frontdesk worker), the real Rasa server, the X emulator as the platform: every
message is handled exactly once and in order per conversation, every reply reaches the emulator once,
exactly one worker polls the X account and another takes over when it dies, and /metrics counts the
traffic.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from bench.cluster import (
    Cluster,
    create_pg_database,
    drop_pg_database,
    make_customers,
    problems,
    record_dms,
    verify,
    wait_until_done,
)
from sandbox.server import running_sandbox
from storage.db import Database
from tests.fixtures.bot import eventually

pytestmark = [pytest.mark.rasa, pytest.mark.postgres]


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _leaders(cluster: Cluster) -> dict[str, float]:
    texts = await cluster.metrics()
    return {name: _metric(text, "frontdesk_poller_leader") for name, text in texts.items()}


async def test_workers_share_the_inbox_and_survive_a_sigkill(tmp_path: Path, nlu_server_url: str) -> None:
    try:
        url = await create_pg_database()
    except OSError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    db = Database(url)
    try:
        async with running_sandbox() as sandbox, Cluster(url, sandbox.base_url, [nlu_server_url], tmp_path) as cluster:
            await cluster.start_worker("w1")
            await cluster.start_worker("w2")
            await cluster.wait_ready()

            # Exactly one of them polls the brand's X account.
            leaders = await eventually(
                lambda: _sum_one(_leaders(cluster)), what="exactly one poller leader", timeout_s=30
            )
            leader = max(leaders, key=lambda n: leaders[n])

            # A DM through the emulator reaches the leader's poller and is answered once.
            async with httpx.AsyncClient(timeout=10) as http:
                await http.post(f"{sandbox.base_url}/_sandbox/dms", json={"sender": "polly", "text": "hello there"})

            customers = await make_customers(sandbox.base_url, 40)
            first = await record_dms(db, customers, 200)
            # Both workers hold conversations mid-work: the one killed leaves leases behind to lapse.
            await eventually(lambda: _busy_owners(db, 2), what="both workers holding conversations", timeout_s=30)
            cluster.kill(leader)
            second = await record_dms(db, customers, 100, start=200)

            # The survivor takes over the poller within seconds of the leader's death.
            await eventually(lambda: _sum_one(_leaders(cluster)), what="the survivor leading", timeout_s=30)
            async with httpx.AsyncClient(timeout=10) as http:
                await http.post(f"{sandbox.base_url}/_sandbox/dms", json={"sender": "polly", "text": "thanks"})

            async def polly_recorded() -> bool | None:
                report = await verify(db, sandbox.base_url)
                return True if report["inbound"] == len(first) + len(second) + 2 else None

            await eventually(polly_recorded, what="both DMs polled (the second by the new leader)", timeout_s=60)
            await wait_until_done(db, timeout_s=120)
            report = await verify(db, sandbox.base_url)
            print("scale test:", report)
            assert problems(report) == [], report
            assert report["inbound"] == 302 and report["handled"] == 302
            assert report["emulator_dms"] == report["outbox_sent"] >= 300

            # The survivor's /metrics counted what it did.
            [text] = (await cluster.metrics()).values()
            assert _metric(text, "frontdesk_messages_received_total", channel="x") > 0
            assert _metric(text, "frontdesk_messages_sent_total", channel="x") > 0
            assert _metric(text, "frontdesk_nlu_parse_seconds_count") > 0
            assert re.search(r'frontdesk_poller_leader\{name="x:\d+"\} 1\.0', text)
            # Its logs are JSON lines carrying the conversation id, without message bodies at INFO.
            [worker] = cluster.workers.values()
            log_text = worker.log_path.read_text()
            assert '"conversation_id":' in log_text.replace(" ", "")
            assert "where is my package" not in log_text
    finally:
        await db.dispose()
        await drop_pg_database(url)


async def _busy_owners(db: Database, at_least: int) -> set[str] | None:
    from sqlalchemy import select

    from storage.models import Conversation, utcnow

    async with db.session() as session:
        owners = set((await session.execute(
            select(Conversation.lease_owner).where(Conversation.lease_until > utcnow())  # type: ignore[operator]
        )).scalars().all()) - {None}
    return owners if len(owners) >= at_least else None  # type: ignore[return-value]


async def _sum_one(leaders_coro: object) -> dict[str, float] | None:
    leaders = await leaders_coro  # type: ignore[misc]
    return leaders if sum(leaders.values()) == 1 else None
