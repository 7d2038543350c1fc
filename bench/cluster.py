"""Several `frontdesk worker` processes on one PostgreSQL database, for the scale test and benchmarks.

    db_url = await create_pg_database()                 # throwaway, migrated; drop_pg_database(db_url) after
    async with running_sandbox() as sandbox, Cluster(db_url, sandbox.base_url, nlu_urls, tmp) as cluster:
        await cluster.start_worker("w1"); await cluster.start_worker("w2")
        customers = await make_customers(sandbox.base_url, 50)
        injected = await record_dms(db, customers, 500)  # straight into the inbox, as a poller would
        cluster.kill("w1")                                # SIGKILL: its leases lapse, another worker continues
        await wait_until_done(db, len(injected))
        report = await verify(db, sandbox.base_url)      # handled once, in order, every reply sent once

Messages are recorded with `record_inbound` directly (the X DM poller records one message per transaction
and would be the bottleneck being measured otherwise); replies go out through the real outbox and X sender
to the X emulator, whose `/_sandbox/sent` is the ground truth for "sent once".
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
from sqlalchemy import func, select

from frontdesk.core.settings import Settings
from nlu.auth import nlu_auth_token
from storage.actions import InboundMessage, record_inbound
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Channel, ConversationKind, Direction, Message, OutboxItem, OutboxStatus

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("FRONTDESK_TEST_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
LEASE_S = 6.0  # the router/outbox lease in the workers started here (short, so a kill is recovered quickly)

TEXTS = (
    "where is my package, it is late",
    "when is the next webinar",
    "hello there",
    "how do I reset my password",
    "thanks",
)


# --- a throwaway database -----------------------------------------------------------------------------------


async def create_pg_database(admin_url: str = PG_ADMIN_URL) -> str:
    import asyncpg

    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        name = f"frontdesk_scale_{uuid.uuid4().hex[:10]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    db = Database(url)
    await upgrade(db)
    await db.dispose()
    return url


async def drop_pg_database(url: str, admin_url: str = PG_ADMIN_URL) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()


# --- worker processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WorkerProcess:
    name: str
    process: asyncio.subprocess.Process
    metrics_port: int
    log_path: Path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@dataclass
class Cluster:
    """`frontdesk worker` subprocesses sharing `database_url`; worker i uses NLU server i mod len(nlu_urls)."""

    database_url: str
    x_api_base: str
    nlu_urls: list[str]
    log_dir: Path
    concurrency: int = 8
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    started: int = 0

    async def __aenter__(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_all()

    def env(self, name: str, metrics_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
        env.update({
            "FRONTDESK_DATABASE_URL": self.database_url,
            "FRONTDESK_X_API_BASE": self.x_api_base,
            "FRONTDESK_NLU_URL": self.nlu_urls[self.started % len(self.nlu_urls)],
            # The servers were started by this process (or share its FRONTDESK_NLU_AUTH_TOKEN): same token.
            "FRONTDESK_NLU_AUTH_TOKEN": nlu_auth_token(Settings()),
            "FRONTDESK_METRICS_PORT": str(metrics_port),
            "FRONTDESK_HTTP_HOST": "127.0.0.1",
            "FRONTDESK_BOT_CONCURRENCY": str(self.concurrency),
            "FRONTDESK_LOG_JSON": "true",
            "FRONTDESK_LEADER_LEASE_S": "3",
            "FRONTDESK_X_DMS_POLL_S": "5",
            "FRONTDESK_X_MENTIONS_POLL_S": "5",
            "FRONTDESK_VAR_DIR": str(self.log_dir / "var"),
            "FRONTDESK_WORKER_LEASE_S": str(LEASE_S),
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        return env

    async def start_worker(self, name: str) -> WorkerProcess:
        port = free_port()
        log_path = self.log_dir / f"{name}-{self.started}.log"
        log = log_path.open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "frontdesk", "worker", cwd=ROOT, env=self.env(name, port),
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.started += 1
        worker = WorkerProcess(name, process, port, log_path)
        self.workers[name] = worker
        return worker

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every worker answers /healthz on its metrics port (its router is then running)."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as http:
            for worker in self.workers.values():
                while True:
                    if worker.process.returncode is not None:
                        raise RuntimeError(f"worker {worker.name} exited: {worker.log_path.read_text()[-2000:]}")
                    try:
                        if (await http.get(worker.metrics_url.replace("/metrics", "/healthz"))).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"worker {worker.name} not ready: {worker.log_path.read_text()[-2000:]}")
                    await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # /metrics answers just before the router's first lease

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up at all, as when a machine dies."""
        worker = self.workers.pop(name)
        worker.process.send_signal(signal.SIGKILL)

    async def stop_all(self) -> None:
        workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            if worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 20)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()

    async def metrics(self) -> dict[str, str]:
        async with httpx.AsyncClient(timeout=5) as http:
            return {w.name: (await http.get(w.metrics_url)).text for w in self.workers.values()}


# --- traffic ------------------------------------------------------------------------------------------------


async def make_customers(sandbox_url: str, count: int, prefix: str = "cust") -> list[tuple[str, str]]:
    """Create `count` X users in the emulator (so the brand can DM them); (user id, username) pairs."""
    out: list[tuple[str, str]] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(count):
            username = f"{prefix}{i:05d}"
            response = await http.post(f"{sandbox_url}/_sandbox/users", json={"username": username})
            response.raise_for_status()
            [user] = [u for u in response.json()["users"] if u["username"] == username]
            out.append((str(user["id"]), username))
    return out


async def record_dms(
    db: Database, customers: list[tuple[str, str]], count: int, *, start: int = 0, tag: str = "m",
    pace_per_s: float = 0.0,
) -> dict[int, float]:
    """Record `count` DMs round-robin over the customers, as the DM poller would; {message id: wall time}."""
    injected: dict[int, float] = {}
    begin = time.monotonic()
    for i in range(start, start + count):
        user_id, username = customers[i % len(customers)]
        if pace_per_s:
            delay = begin + (i - start) / pace_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        recorded = await record_inbound(db, InboundMessage(
            channel=Channel.x, conversation_kind=ConversationKind.dm, conversation_ref=user_id,
            sender_id=user_id, sender_handle=username, text=TEXTS[(i // len(customers)) % len(TEXTS)],
            platform_message_id=f"{tag}-{i}",
        ))
        injected[recorded.message_id] = time.time()
    return injected


async def counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        unhandled = (await session.execute(
            select(func.count()).select_from(Message).where(
                Message.direction == Direction.inbound, Message.handled_at.is_(None))  # type: ignore[union-attr]
        )).scalar_one()
        open_outbox = (await session.execute(
            select(func.count()).select_from(OutboxItem).where(
                OutboxItem.status.in_([OutboxStatus.pending, OutboxStatus.sending]))  # type: ignore[attr-defined]
        )).scalar_one()
    return {"unhandled": int(unhandled), "outbox_open": int(open_outbox)}


async def wait_until_done(db: Database, timeout_s: float = 300.0, settle_s: float = 0.0) -> float:
    """Until every inbound message is handled and the outbox is empty; returns when (time.time())."""
    deadline = time.monotonic() + timeout_s
    while True:
        now = await counts(db)
        if now["unhandled"] == 0 and now["outbox_open"] == 0:
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout_s:.0f} s: {now}")
        await asyncio.sleep(0.25)


# --- checking -----------------------------------------------------------------------------------------------


async def verify(db: Database, sandbox_url: str) -> dict[str, Any]:
    """Handled once and in order per conversation; every outbox row sent once (the emulator's view)."""
    async with db.session() as session:
        inbound = (await session.execute(
            select(Message.id, Message.conversation_id, Message.handled_at)
            .where(Message.direction == Direction.inbound).order_by(Message.id)
        )).all()
        outbox = (await session.execute(
            select(OutboxItem.id, OutboxItem.conversation_id, OutboxItem.status, OutboxItem.platform_message_id,
                   OutboxItem.idempotency_key, OutboxItem.attempts)
            .order_by(OutboxItem.id)
        )).all()
    async with httpx.AsyncClient(timeout=30) as http:
        sent = (await http.get(f"{sandbox_url}/_sandbox/sent")).json()
    emulator_dms = sent.get("dms", [])
    emulator_ids = [str(d["id"]) for d in emulator_dms]

    last_handled: dict[int, Any] = {}
    out_of_order = 0
    for _mid, cid, handled_at in inbound:
        if handled_at is not None and cid in last_handled and handled_at < last_handled[cid]:
            out_of_order += 1
        if handled_at is not None:
            last_handled[cid] = handled_at
    keys = [row.idempotency_key for row in outbox if row.idempotency_key]
    sent_rows = [row for row in outbox if row.status == OutboxStatus.sent]
    platform_ids = [str(row.platform_message_id) for row in sent_rows]
    # Replies of one conversation reached the emulator in the order they were queued.
    position = {pid: i for i, pid in enumerate(emulator_ids)}
    replies_out_of_order = 0
    last_position: dict[int, int] = {}
    for row in sent_rows:
        pos = position.get(str(row.platform_message_id))
        if pos is None:
            continue
        if row.conversation_id in last_position and pos < last_position[row.conversation_id]:
            replies_out_of_order += 1
        last_position[row.conversation_id] = pos
    return {
        "inbound": len(inbound),
        "handled": sum(1 for r in inbound if r.handled_at is not None),
        "conversations": len({r.conversation_id for r in inbound}),
        "handled_out_of_order": out_of_order,
        "outbox_rows": len(outbox),
        "outbox_sent": len(sent_rows),
        "outbox_not_sent": len(outbox) - len(sent_rows),
        "duplicate_outbox_keys": len(keys) - len(set(keys)),
        "emulator_dms": len(emulator_dms),
        "emulator_duplicate_dms": len(emulator_ids) - len(set(emulator_ids)),
        "sent_rows_missing_in_emulator": len(set(platform_ids) - set(emulator_ids)),
        "emulator_dms_without_row": len(set(emulator_ids) - set(platform_ids)),
        "replies_out_of_order": replies_out_of_order,
        "outbox_retried_rows": sum(1 for r in outbox if r.attempts > 1),
    }


def problems(report: dict[str, Any]) -> list[str]:
    """What in a `verify` report breaks exactly-once / in-order (empty: all good)."""
    bad = []
    if report["handled"] != report["inbound"]:
        bad.append(f"{report['inbound'] - report['handled']} messages not handled")
    for key in ("handled_out_of_order", "outbox_not_sent", "duplicate_outbox_keys", "emulator_duplicate_dms",
                "sent_rows_missing_in_emulator", "emulator_dms_without_row", "replies_out_of_order"):
        if report[key]:
            bad.append(f"{key}={report[key]}")
    if report["emulator_dms"] != report["outbox_sent"]:
        bad.append(f"emulator has {report['emulator_dms']} DMs for {report['outbox_sent']} sent rows")
    return bad
