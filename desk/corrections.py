"""Agents' labels in the store: intent corrections and queue moves, as `frontdesk nlu retrain` learns them.

When an agent tells the desk what a customer message really meant, the store keeps it in
`messages.corrected_intent`; when an agent moves a ticket to another queue, the audit trail keeps a
`moved` event, and the ticket's opening message is a label for that queue (nlu/retrain.py turns it into
the queue's intent the model ranks highest).  `frontdesk nlu export-corrections` writes the corrections as
Rasa 3.x NLU YAML without training; `frontdesk nlu retrain` trains on both and keeps the model only if it
is not worse.  Either way the texts are anonymised like the corpora (nlu/anonymise.py: handles -> @user,
links, e-mail addresses, phone and order numbers -> placeholders) and rows of the evaluation sets are left
out: a training file gets copied, committed and shared, a customer's details must not travel with it.

    version: "3.1"
    nlu:
    - intent: order_problem
      examples: |
        - where is my parcel, it's been two weeks
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, select

from frontdesk.core.settings import PROJECT_ROOT, get_settings
from nlu.retrain import Label, QueueMove, eval_keys, render_rasa_nlu, training_labels
from storage.db import Database
from storage.models import Author, Message, TicketEvent

# Every labelled CSV of the NLU project: dev sets and held-out sets are never trained on.
EVAL_DIR = PROJECT_ROOT / "nlu" / "eval"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    examples: int
    intents: dict[str, int]


async def collect_labels(db: Database) -> list[Label]:
    """Customer messages an agent gave an intent, oldest first."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Message.text, Message.corrected_intent)
                .where(Message.corrected_intent.is_not(None), Message.author == Author.customer)  # type: ignore[union-attr]
                .order_by(Message.id)
            )
        ).all()
    return [Label(text or "", intent) for text, intent in rows]


async def collect_queue_moves(db: Database) -> list[QueueMove]:
    """Each moved ticket's opening customer message and the queue it was last moved to.

    A ticket whose opening message also carries an intent correction is left to the correction, the
    more precise label.
    """
    async with db.session() as session:
        last_moves = (
            select(TicketEvent.ticket_id, func.max(TicketEvent.id).label("event_id"))
            .where(TicketEvent.action == "moved")
            .group_by(TicketEvent.ticket_id)
            .subquery()
        )
        moves = (
            await session.execute(
                select(TicketEvent.ticket_id, TicketEvent.detail).join(
                    last_moves, TicketEvent.id == last_moves.c.event_id
                ).order_by(TicketEvent.ticket_id)
            )
        ).all()
        if not moves:
            return []
        openers = (
            select(Message.ticket_id, func.min(Message.id).label("message_id"))
            .where(Message.ticket_id.in_([t for t, _ in moves]), Message.author == Author.customer)  # type: ignore[union-attr]
            .group_by(Message.ticket_id)
            .subquery()
        )
        first = {
            ticket_id: (text, corrected)
            for ticket_id, text, corrected in (
                await session.execute(
                    select(Message.ticket_id, Message.text, Message.corrected_intent).join(
                        openers, Message.id == openers.c.message_id
                    )
                )
            ).all()
        }
    out: list[QueueMove] = []
    for ticket_id, detail in moves:
        text, corrected = first.get(ticket_id, (None, None))
        queue = (detail or {}).get("to")
        if text and queue and corrected is None:
            out.append(QueueMove(text, queue))
    return out


async def collect_corrections(db: Database, *, eval_dir: Path = EVAL_DIR) -> dict[str, list[str]]:
    """Corrected messages grouped by intent: anonymised, de-duplicated, evaluation rows left out."""
    labels = await collect_labels(db)
    return training_labels(labels, excluded=eval_keys(sorted(eval_dir.glob("*.csv")))).examples


async def export_corrections(db: Database, path: Path) -> ExportResult:
    corrections = await collect_corrections(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render_rasa_nlu(corrections), encoding="utf-8")
    tmp.replace(path)  # never leave a half-written training file behind
    return ExportResult(
        path=path,
        examples=sum(len(v) for v in corrections.values()),
        intents={intent: len(examples) for intent, examples in corrections.items()},
    )


def export_corrections_command(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the YAML (default: FRONTDESK_NLU_CORRECTIONS_PATH)."),
    ] = None,
) -> None:
    """Write agents' intent corrections as Rasa NLU training data; the next `frontdesk nlu train` learns them."""
    from storage.migrate import open_database

    output = output or get_settings().nlu_corrections_path

    async def _run() -> ExportResult:
        db = await open_database(get_settings().effective_database_url)
        try:
            return await export_corrections(db, output)
        finally:
            await db.dispose()

    result = asyncio.run(_run())
    summary = ", ".join(f"{intent} {n}" for intent, n in result.intents.items()) or "no corrections yet"
    typer.echo(f"wrote {result.examples} example(s) to {result.path} ({summary})")
