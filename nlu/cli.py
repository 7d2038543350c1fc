"""`frontdesk nlu …`: build the Rasa venv, train, serve, parse one message, evaluate on a CSV.

Progress goes to stderr and results to stdout, so ``frontdesk nlu eval x.csv --json | jq`` works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bot.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from frontdesk.core.settings import Settings, get_settings
from nlu.auth import nlu_auth_token
from nlu.client import NLUClient, NLUError
from nlu.eval import (
    EvalDataError,
    EvalReport,
    evaluate,
    format_comparison,
    format_report,
    load_eval_csv,
    write_baseline_config,
)
from nlu.machine import MachineSpeed, machine_speed_for
from nlu.rasa_process import RasaRuntimeError, stderr_progress
from nlu.rasa_venv import ensure_rasa_venv
from nlu.retrain import DEFAULT_TOLERANCE, DevScores, RetrainResult, retrain
from nlu.serving import nlu_endpoint, running_nlu_server, serve_forever
from nlu.training import train as train_model

app = typer.Typer(
    no_args_is_help=True, help="The NLU service: Rasa's venv, training, serving and evaluation."
)

T = TypeVar("T")

ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project", help="Rasa project directory (default: settings.nlu_project_dir, nlu/project)."
    ),
]
TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        "--taxonomy",
        help="Intent -> category, queue, priority (default: settings.taxonomy_path, content/taxonomy.yml).",
    ),
]


def _settings(project: Path | None, taxonomy: Path | None = None) -> Settings:
    settings = get_settings()
    update: dict[str, Any] = {}
    if project is not None:
        update["nlu_project_dir"] = project.resolve()
    if taxonomy is not None:
        update["taxonomy_path"] = taxonomy.resolve()
    return settings.model_copy(update=update) if update else settings


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run that turns our typed failures into one clear line and exit code 1."""
    try:
        return asyncio.run(coro)
    except (RasaRuntimeError, NLUError, EvalDataError, TaxonomyError) as exc:
        raise _fail(str(exc)) from None


def _client(settings: Settings, url: str) -> NLUClient:
    token = nlu_auth_token(settings)
    return NLUClient(url, settings.nlu_timeout_s, settings.nlu_retries, auth_token=token)


def _load_taxonomy(settings: Settings) -> Taxonomy:
    """The brand's taxonomy (the bot's routing data): what `parse` and `eval` map intents through."""
    try:
        return load_taxonomy(settings.effective_taxonomy_path)
    except TaxonomyError as exc:
        raise _fail(str(exc)) from None


@contextlib.asynccontextmanager
async def _nlu_url(
    settings: Settings, *, model: Path | None = None, log_name: str = "rasa-nlu.log"
) -> AsyncIterator[str]:
    """settings.nlu_url when set (and no specific model is asked for), else a Rasa started for the command."""
    if model is None:
        async with nlu_endpoint(settings) as url:
            yield url
        return
    async with running_nlu_server(settings, model=model, log_name=log_name) as url:
        yield url


@app.command("venv")
def venv_command() -> None:
    """Create (or check) Rasa's Python 3.10 virtualenv at settings.rasa_venv."""
    try:
        path = ensure_rasa_venv(get_settings())
    except RasaRuntimeError as exc:
        raise _fail(str(exc)) from None
    typer.echo(str(path))


@app.command("train")
def train_command(
    force: Annotated[
        bool, typer.Option("--force", help="Retrain even if a model for these inputs exists.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Train the NLU model (skipped when var/models already has one for the same inputs); print its path."""
    settings = _settings(project)
    try:
        model = train_model(settings, force=force)
    except RasaRuntimeError as exc:
        raise _fail(str(exc)) from None
    typer.echo(str(model))


@app.command("serve")
def serve_command(
    project: ProjectOption = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: settings.nlu_port (5005).")] = None,
) -> None:
    """Run Rasa (API behind the NLU token) on 127.0.0.1, training first if needed; restart it on a crash."""
    settings = _settings(project)

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve_forever(settings, port=port)
        stderr_progress("nlu: stopped")

    _run(main())


@app.command("parse")
def parse_command(
    text: Annotated[str, typer.Argument(help="The message to classify.")],
    project: ProjectOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Classify one message and print JSON; starts a Rasa for the purpose when FRONTDESK_NLU_URL is unset."""
    settings = _settings(project, taxonomy)
    tax = _load_taxonomy(settings)

    async def main() -> dict[str, Any]:
        async with _nlu_url(settings) as url:
            async with _client(settings, url) as client:
                result = await client.parse(text)
        out = result.as_dict()
        out.pop("intent_ranking")
        route = tax.route(result.intent)  # what the router makes of it, beside what the model said
        out.update(category=route.category, queue=route.queue, priority=route.priority)
        return out

    typer.echo(json.dumps(_run(main()), indent=2, ensure_ascii=False))


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="CSV with columns text,category (others ignored).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    baseline: Annotated[
        bool,
        typer.Option("--baseline", help="Also train Rasa's default pipeline on the same data and compare."),
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Parses in flight at once.")] = 4,
    project: ProjectOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Score the NLU per category (precision, recall, F1, macro-F1, confusion) and its parse latency."""
    settings = _settings(project, taxonomy)
    try:
        rows = load_eval_csv(file)
    except EvalDataError as exc:
        raise _fail(str(exc)) from None
    tax = _load_taxonomy(settings)

    async def score_with(
        model: Path | None, log_name: str = "rasa-nlu.log"
    ) -> tuple[EvalReport, MachineSpeed]:
        async with _nlu_url(settings, model=model, log_name=log_name) as url:
            stderr_progress(f"eval: {len(rows)} messages from {file} against {url}")
            async with _client(settings, url) as client:
                report = await evaluate(
                    client, rows, category_of=tax.category, concurrency=concurrency, progress=stderr_progress
                )
        # Right after the latency sample: the parse latency moves with this machine's speed (nlu/machine.py).
        return report, await asyncio.to_thread(machine_speed_for, url, settings)

    async def main() -> tuple[EvalReport, MachineSpeed, EvalReport | None]:
        report, machine = await score_with(None)
        if not baseline:
            return report, machine, None
        with tempfile.TemporaryDirectory(prefix="frontdesk-baseline-") as tmp:
            config = write_baseline_config(Path(tmp))
            stderr_progress("eval: training the baseline (Rasa's default pipeline) on the same data")
            model = await asyncio.to_thread(train_model, settings, config=config)
        base, _ = await score_with(model, log_name="rasa-nlu-baseline.log")
        return report, machine, base

    report, machine, base = _run(main())
    if as_json:
        if base is None:
            out: dict[str, Any] = {**report.as_dict(), "machine": machine.as_dict()}
        else:
            out = {
                "model": report.as_dict(),
                "baseline": base.as_dict(),
                "delta_macro_f1": round(report.macro_f1 - base.macro_f1, 4),
                "machine": machine.as_dict(),
            }
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(format_report(report, "model"))
    typer.echo(f"machine: {machine.describe()}")
    if base is not None:
        typer.echo("\n" + format_report(base, "baseline (Rasa default pipeline)"))
        typer.echo("\n" + format_comparison(report, base))


DEV_SETS_HELP = "A dev CSV (text,category) to score both models on; repeat it. Default: nlu/eval/dev_*.csv."


@app.command("retrain")
def retrain_command(
    dev: Annotated[list[Path] | None, typer.Option("--dev", help=DEV_SETS_HELP)] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=0.2, help="How much lower the mean dev macro-F1 may be and still count as not worse.")
    ] = DEFAULT_TOLERANCE,
    nlu_url: Annotated[
        str | None,
        typer.Option("--nlu-url", help="The Rasa in use (default: FRONTDESK_NLU_URL, else 127.0.0.1:FRONTDESK_NLU_PORT if one answers)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    project: ProjectOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Learn from the desk: train on agents' corrections and queue moves, keep the model only if not worse."""
    from desk.corrections import EVAL_DIR, collect_labels, collect_queue_moves
    from storage.migrate import open_database

    settings = _settings(project, taxonomy)
    tax = _load_taxonomy(settings)
    dev_sets = [p.resolve() for p in dev] if dev else sorted(EVAL_DIR.glob("dev_*.csv"))
    missing = [str(p) for p in dev_sets if not p.is_file()]
    if missing or not dev_sets:
        raise _fail(f"no dev set at {', '.join(missing) or EVAL_DIR / 'dev_*.csv'}: pass --dev FILE.csv")

    async def main() -> RetrainResult:
        db = await open_database(settings.effective_database_url)
        try:
            labels, moves = await collect_labels(db), await collect_queue_moves(db)
        finally:
            await db.dispose()
        stderr_progress(f"retrain: {len(labels)} intent correction(s) and {len(moves)} queue move(s) in the store")
        return await retrain(
            settings, labels, moves,
            dev_sets=dev_sets, category_of=tax.category, queue_of=lambda i: tax.route(i).queue,
            known_intents=tax.intents, running_url=await _running_nlu(settings, nlu_url), tolerance=tolerance,
        )  # fmt: skip

    result = _run(main())
    if as_json:
        typer.echo(json.dumps(_retrain_json(result), indent=2))
    else:
        typer.echo(_retrain_table(result))
    if not result.verdict.kept and result.candidate is not None:
        raise typer.Exit(3)  # scripts can tell "kept" (0) from "trained but not kept" (3)


async def _running_nlu(settings: Settings, explicit: str | None) -> str | None:
    """The Rasa the bot uses: the one named, else FRONTDESK_NLU_URL, else `frontdesk run`'s on its port."""
    if explicit or settings.nlu_url:
        return (explicit or settings.nlu_url).rstrip("/")
    url = f"http://127.0.0.1:{settings.nlu_port}"
    try:
        async with NLUClient(url, 2.0, 0, auth_token=nlu_auth_token(settings)) as client:
            await client.status()
    except NLUError:
        return None
    return url


def _retrain_json(result: RetrainResult) -> dict[str, Any]:
    def scores(s: DevScores | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {"mean_macro_f1": round(s.mean_macro_f1, 4), **{n: round(r.macro_f1, 4) for n, r in s.reports.items()}}

    return {
        "labels": result.labels.count,
        "by_intent": {intent: len(v) for intent, v in result.labels.examples.items()},
        "dropped_as_eval_rows": result.labels.dropped_as_eval,
        "unknown_intents": list(result.labels.unknown_intents),
        "moves_without_intent": result.moves_without_intent,
        "current": scores(result.current),
        "candidate": scores(result.candidate),
        "kept": result.verdict.kept,
        "reason": result.verdict.reason,
        "model": str(result.model) if result.model else None,
        "reloaded": result.reloaded_url,
    }


def _retrain_table(result: RetrainResult) -> str:
    lines = [f"labels: {result.labels.count} example(s) "
             f"({', '.join(f'{i} {len(v)}' for i, v in result.labels.examples.items()) or 'none'}); "
             f"{result.labels.dropped_as_eval} left out as evaluation rows"]  # fmt: skip
    if result.labels.unknown_intents:
        lines.append(f"not in the taxonomy, not trained: {', '.join(result.labels.unknown_intents)}")
    if result.moves_without_intent:
        lines.append(f"{result.moves_without_intent} queue move(s) left out: the model ranks no intent of that queue")
    lines.append(f"{'dev set':<28} {'current':>8} {'candidate':>10}")
    for name, report in result.current.reports.items():
        cand = f"{result.candidate.reports[name].macro_f1:.3f}" if result.candidate else "-"
        lines.append(f"{name:<28} {report.macro_f1:>8.3f} {cand:>10}")
    mean = f"{result.candidate.mean_macro_f1:.3f}" if result.candidate else "-"
    lines.append(f"{'mean macro-F1':<28} {result.current.mean_macro_f1:>8.3f} {mean:>10}")
    lines.append(("kept: " if result.verdict.kept else "not kept: ") + result.verdict.reason)
    if result.model:
        lines.append(f"model: {result.model}")
        lines.append(f"the running NLU at {result.reloaded_url} now serves it" if result.reloaded_url
                     else "no running NLU found: the next start loads it")  # fmt: skip
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - `python -m nlu.cli` for debugging without the root app
    from frontdesk.core.logging import redact_stderr

    redact_stderr()
    app()


if __name__ == "__main__" and sys.argv:
    main()
