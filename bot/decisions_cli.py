"""`frontdesk eval decisions FILE.csv`: what the bot does with each message, classed right / safe / harmful.

Every message goes through the real NLU (FRONTDESK_NLU_URL, or a Rasa started for the command, as
`frontdesk nlu eval` does) and the real router with a fresh conversation; nothing is written.  Prints
the three rates, per category, and the most common harmful (category, decision) pairs; never a row.
`--sweep` routes the same parses under several thresholds (the NLU is asked once per message), which is
how the shipped thresholds were chosen on the dev sets (docs/bot.md); never sweep on `shared/eval/`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.content import ContentError
from bot.content_store import load_bundle
from bot.decisions import HARMFUL, RIGHT, format_decisions, parse_all, score_decisions
from bot.router import RouterConfig
from frontdesk.core.settings import get_settings
from nlu.auth import nlu_auth_token
from nlu.client import NLUClient, NLUError, ParseResult
from nlu.eval import EvalDataError, load_eval_csv
from nlu.rasa_process import RasaRuntimeError, stderr_progress
from nlu.serving import nlu_endpoint

app = typer.Typer(no_args_is_help=True, help="Measure what the bot does: decisions on a labelled CSV.")


def _floats(spec: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated numbers, e.g. 0.4,0.5,0.6") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise typer.BadParameter(f"{name} values must be between 0 and 1")
    return values


@app.command("decisions")
def decisions_command(
    files: Annotated[list[Path], typer.Argument(help="CSV file(s) with columns text,category.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    kind: Annotated[
        str, typer.Option(help="Conversation kind: auto (a text tagging a @handle is a public mention, "
                          "else a DM), dm, public or telegram.")
    ] = "auto",
    threshold: Annotated[
        float | None, typer.Option(help="Category confidence to act on (default: the setting).")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Lead over the next category to act on (default: the setting).")
    ] = None,
    sweep: Annotated[
        str, typer.Option(help="Route under every THRESHOLDS/MARGINS pair, e.g. '0.3,0.4,0.5/0,0.1,0.2' "
                          "(dev sets only).")
    ] = "",
) -> None:
    """Run each message through the real NLU and router; print right / safe / harmful rates."""
    if kind not in ("auto", "dm", "public", "telegram"):
        raise typer.BadParameter("--kind must be auto, dm, public or telegram")
    settings = get_settings()
    try:
        # The same checks as start-up and `frontdesk content check` (FAQ intents against the taxonomy too).
        bundle = load_bundle(settings.content_dir, settings.effective_taxonomy_path)
        content, taxonomy = bundle.content, bundle.taxonomy
        rows = [(r.text, r.category) for f in files for r in load_eval_csv(f)]
    except (ContentError, EvalDataError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    base = RouterConfig(
        confidence_threshold=settings.nlu_confidence_threshold if threshold is None else threshold,
        margin_threshold=settings.nlu_margin_threshold if margin is None else margin,
        taxonomy=taxonomy,
    )
    grid = [(base.confidence_threshold, base.margin_threshold)]
    if sweep:
        thresholds, _, margins = sweep.partition("/")
        grid = [(t, m) for t in _floats(thresholds, "thresholds") for m in _floats(margins or "0", "margins")]

    async def parse_rows() -> list[ParseResult | None]:
        async with nlu_endpoint(settings) as url:
            stderr_progress(f"eval decisions: {len(rows)} messages from {', '.join(map(str, files))} against {url}")
            token = nlu_auth_token(settings)
            async with NLUClient(url, settings.nlu_timeout_s, settings.nlu_retries, auth_token=token) as client:
                async def parse(text: str) -> ParseResult | None:
                    return await client.parse(text) if text.strip() else None

                return await parse_all([text for text, _ in rows], parse)

    try:
        parsed = asyncio.run(parse_rows())
    except (RasaRuntimeError, NLUError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    now = datetime.now(timezone.utc)
    results: list[dict[str, Any]] = []
    for t, m in grid:
        config = RouterConfig(confidence_threshold=t, margin_threshold=m, taxonomy=taxonomy)
        report = score_decisions(rows, parsed, content, config, kind=kind, now=now)
        results.append({"threshold": t, "margin": m, **report.as_dict()})
        if not as_json:
            if sweep:
                typer.echo(f"threshold {t:.2f} margin {m:.2f}: right {report.rate(RIGHT):.1%}  "
                           f"harmful {report.rate(HARMFUL):.1%}")
            else:
                typer.echo(format_decisions(report, f"decisions (threshold {t:.2f}, margin {m:.2f})"))
    if as_json:
        typer.echo(json.dumps(results if sweep else results[0], indent=2))
