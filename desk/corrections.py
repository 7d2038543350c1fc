"""Agents' intent corrections, exported as Rasa NLU training data (`nlu/corrections.yml`).

When an agent tells the desk what a customer message really meant, the store keeps it in
`messages.corrected_intent`.  `frontdesk nlu export-corrections` writes those messages as Rasa 3.x NLU
YAML, one `- intent:` block per corrected intent, so the next training run learns from them.  They are
anonymised like the corpora first (nlu/anonymise.py: handles -> @user, links, e-mail addresses, phone and
order numbers -> placeholders): a training file gets copied, committed and shared, a customer's details
must not travel with it.

    version: "3.1"
    nlu:
    - intent: order_problem
      examples: |
        - where is my parcel, it's been two weeks
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select

from frontdesk.core.settings import get_settings
from nlu.anonymise import anonymise_message
from storage.db import Database
from storage.models import Author, Message

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    examples: int
    intents: dict[str, int]


def normalise_example(text: str) -> str:
    """One anonymised line per example (a Rasa example is one line), with no accidental entity annotation.

    Square brackets become parentheses, as in the corpora: Rasa reads "[text](entity)" as an annotation,
    and the placeholders then read "(email)", "(phone)", as they do in the corpus files.
    """
    text = anonymise_message(_WHITESPACE.sub(" ", text).strip())
    return text.replace("[", "(").replace("]", ")")


async def collect_corrections(db: Database) -> dict[str, list[str]]:
    """Corrected customer messages grouped by their corrected intent: sorted, de-duplicated, non-empty."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Message.corrected_intent, Message.text)
                .where(Message.corrected_intent.is_not(None), Message.author == Author.customer)  # type: ignore[union-attr]
                .order_by(Message.id)
            )
        ).all()
    by_intent: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for intent, text in rows:
        example = normalise_example(text or "")
        key = (intent, example.casefold())
        if not example or key in seen:
            continue
        seen.add(key)
        by_intent.setdefault(intent, []).append(example)
    return {intent: by_intent[intent] for intent in sorted(by_intent)}


def render_rasa_nlu(corrections: dict[str, list[str]]) -> str:
    """Rasa NLU YAML (format version 3.1); the examples are a literal block, so no quoting is needed."""
    lines = [
        "# Written by `frontdesk nlu export-corrections` from agents' intent corrections in the desk.",
        "# Regenerated on every export: edit the corrections in the desk, not this file.",
        'version: "3.1"',
        "nlu:" if corrections else "nlu: []",
    ]
    for intent, examples in corrections.items():
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {example}" for example in examples)
    return "\n".join(lines) + "\n"


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
