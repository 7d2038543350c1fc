"""Learning from the desk: `frontdesk nlu retrain` trains on agents' labels and keeps the model only if not worse.

The labels are what agents tell the desk: an intent correction on a customer message, and the queue an
agent moves a ticket to (its opening message belongs in that queue; the intent is the one the current model
ranks highest among that queue's intents).  They are anonymised (nlu/anonymise.py), de-duplicated, and any
text that is also a row of an evaluation or dev set is dropped: a model must never be scored on what it
was taught.

Then a candidate model is trained on the project's data plus the labels, both models are scored on the dev
sets (macro-F1 per category, as `frontdesk nlu eval`), and the candidate is kept only when it is not worse
(`verdict`).  Kept: the labels file becomes the project's corrections file (so every later start trains,
or finds in the cache, the same model) and a running Rasa loads it with ``PUT /model``, without a restart.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from frontdesk.core.settings import PROJECT_ROOT, Settings
from nlu.anonymise import training_example
from nlu.client import IntentScore, NLUClient
from nlu.eval import CategoryOf, EvalReport, evaluate, load_eval_csv
from nlu.rasa_process import Progress, stderr_progress
from nlu.serving import running_nlu_server
from nlu.training import train

T = TypeVar("T")

# Not worse: the mean macro-F1 over the dev sets may be lower by at most this (training is not bit-for-bit
# repeatable across data changes), and no single dev set may lose more than MAX_SET_DROP.
DEFAULT_TOLERANCE = 0.005
MAX_SET_DROP = 0.02

CORRECTIONS_HEADER = (
    "# Written by `frontdesk nlu retrain` / `export-corrections` from agents' labels in the desk\n"
    "# (intent corrections, queue moves). Regenerated each time: correct the desk, not this file.\n"
)


@dataclass(frozen=True)
class Label:
    """A customer's words and the intent an agent says they meant."""

    text: str
    intent: str
    source: str = "correction"  # "correction" | "queue move"


@dataclass(frozen=True)
class QueueMove:
    """An agent moved the ticket this message opened to ``queue``."""

    text: str
    queue: str


@dataclass(frozen=True)
class TrainingLabels:
    examples: dict[str, list[str]]  # intent -> anonymised, de-duplicated examples, in label order
    dropped_as_eval: int = 0  # the same words as a row of an evaluation / dev set
    duplicates: int = 0
    unknown_intents: tuple[str, ...] = ()  # not in the taxonomy: never trained (a renamed intent)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.examples.values())


def example_key(text: str) -> str:
    """What makes two texts the same example: their anonymised form, case-folded."""
    return training_example(text).casefold()


def eval_keys(paths: Iterable[Path]) -> set[str]:
    """The example keys of every ``text`` of these CSV files (missing files are skipped)."""
    keys: set[str] = set()
    for path in paths:
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for row in csv.DictReader(handle):
                text = (row.get("text") or "").strip()
                if text:
                    keys.add(example_key(text))
    return keys


def training_labels(
    labels: Iterable[Label], *, excluded: set[str], known_intents: Iterable[str] | None = None
) -> TrainingLabels:
    """The labels as training examples: anonymised, de-duplicated, evaluation rows and unknown intents out.

    A text labelled twice keeps its latest label (an agent corrected a correction).
    """
    known = set(known_intents) if known_intents is not None else None
    latest: dict[str, tuple[str, str]] = {}
    duplicates = dropped = 0
    unknown: set[str] = set()
    for label in labels:
        example = training_example(label.text)
        if not example:
            continue
        key = example.casefold()
        if key in excluded:
            dropped += 1
            continue
        if known is not None and label.intent not in known:
            unknown.add(label.intent)
            continue
        if key in latest:  # the first wording and place, the latest intent
            duplicates += 1
            example = latest[key][1]
        latest[key] = (label.intent, example)
    examples: dict[str, list[str]] = {}
    for intent, example in latest.values():
        examples.setdefault(intent, []).append(example)
    return TrainingLabels(
        examples={intent: examples[intent] for intent in sorted(examples)},
        dropped_as_eval=dropped,
        duplicates=duplicates,
        unknown_intents=tuple(sorted(unknown)),
    )


def render_rasa_nlu(examples: dict[str, list[str]], header: str = CORRECTIONS_HEADER) -> str:
    """Rasa NLU YAML (format version 3.1); the examples are a literal block, so no quoting is needed."""
    lines = [header.rstrip("\n"), 'version: "3.1"', "nlu:" if examples else "nlu: []"]
    for intent, items in examples.items():
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {example}" for example in items)
    return "\n".join(lines) + "\n"


def intent_for_move(ranking: Sequence[IntentScore], queue: str, queue_of: Callable[[str], str]) -> str | None:
    """The intent the model ranks highest among those of ``queue`` (None: the ranking names none of them)."""
    for scored in ranking:
        if queue_of(scored.name) == queue:
            return scored.name
    return None


@dataclass(frozen=True)
class DevScores:
    """A model's reports on each dev set, by the set's file name."""

    reports: dict[str, EvalReport] = field(default_factory=dict)

    @property
    def mean_macro_f1(self) -> float:
        return sum(r.macro_f1 for r in self.reports.values()) / len(self.reports) if self.reports else 0.0


@dataclass(frozen=True)
class Verdict:
    kept: bool
    reason: str


def verdict(
    current: DevScores, candidate: DevScores, *, tolerance: float = DEFAULT_TOLERANCE, max_set_drop: float = MAX_SET_DROP
) -> Verdict:
    """Keep the candidate unless it is worse than the current model on the dev sets."""
    if set(current.reports) != set(candidate.reports) or not current.reports:
        return Verdict(False, "the two models were not scored on the same dev sets")
    delta = candidate.mean_macro_f1 - current.mean_macro_f1
    if delta < -tolerance:
        return Verdict(False, f"mean dev macro-F1 falls by {-delta:.3f} (more than the tolerance {tolerance:.3f})")
    for name, report in candidate.reports.items():
        drop = current.reports[name].macro_f1 - report.macro_f1
        if drop > max_set_drop:
            return Verdict(False, f"{name}: macro-F1 falls by {drop:.3f} (more than {max_set_drop:.3f} on one set)")
    return Verdict(True, f"mean dev macro-F1 {current.mean_macro_f1:.3f} -> {candidate.mean_macro_f1:.3f}")


def labels_digest(rendered: str) -> str:
    return hashlib.sha256(rendered.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RetrainResult:
    labels: TrainingLabels
    moves_without_intent: int  # queue moves whose target queue the model ranked no intent of
    current: DevScores
    candidate: DevScores | None  # None: nothing new to learn, no candidate trained
    verdict: Verdict
    model: Path | None  # the kept model
    reloaded_url: str | None  # the running Rasa that now serves it


async def retrain(
    settings: Settings,
    labels: Sequence[Label],
    moves: Sequence[QueueMove],
    *,
    dev_sets: Sequence[Path],
    category_of: CategoryOf,
    queue_of: Callable[[str], str],
    known_intents: Iterable[str],
    running_url: str | None,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: Progress = stderr_progress,
) -> RetrainResult:
    """Train on the project's data plus the labels; keep the candidate only if it is not worse (module doc).

    ``running_url``: the Rasa in use (scored as the current model, and told to load a kept one); None
    starts one with the current model for the scoring.
    """
    rows = {path.name: load_eval_csv(path) for path in dev_sets}
    excluded = eval_keys(dev_sets) | eval_keys(_evaluation_files(settings))
    known = list(known_intents)

    async def score(url: str, what: str) -> DevScores:
        reports: dict[str, EvalReport] = {}
        async with NLUClient.from_settings(settings, url) as client:
            for name, dev in rows.items():
                progress(f"retrain: scoring the {what} model on {name} ({len(dev)} rows)")
                reports[name] = await evaluate(client, dev, category_of=category_of, latency_sample=1)
        return DevScores(reports)

    async def with_current(use: Callable[[str], Awaitable[T]]) -> T:
        if running_url:
            return await use(running_url)
        current_model = await asyncio.to_thread(train, settings, progress=progress)
        async with running_nlu_server(settings, model=current_model, progress=progress) as url:
            return await use(url)

    async def resolve_moves(url: str) -> tuple[list[Label], int, DevScores]:
        resolved: list[Label] = []
        missing = 0
        async with NLUClient.from_settings(settings, url) as client:
            for move in moves:
                intent = intent_for_move((await client.parse(move.text)).intent_ranking, move.queue, queue_of)
                if intent is None:
                    missing += 1
                else:
                    resolved.append(Label(move.text, intent, source="queue move"))
        return resolved, missing, await score(url, "current")

    from_moves, missing, current = await with_current(resolve_moves)
    merged = training_labels([*from_moves, *labels], excluded=excluded, known_intents=known)
    rendered = render_rasa_nlu(merged.examples)
    corrections = Path(settings.nlu_corrections_path)
    if corrections.is_file() and corrections.read_text(encoding="utf-8") == rendered:
        return RetrainResult(
            merged, missing, current, None, Verdict(False, "nothing new to learn since the last kept model"), None, None
        )
    candidate_file = settings.var_dir / "nlu-candidates" / f"corrections-{labels_digest(rendered)}.yml"
    candidate_file.parent.mkdir(parents=True, exist_ok=True)
    candidate_file.write_text(rendered, encoding="utf-8")
    candidate_settings = settings.model_copy(update={"nlu_corrections_path": candidate_file})
    progress(f"retrain: training a candidate on {merged.count} label(s) ({candidate_file})")
    candidate_model = await asyncio.to_thread(train, candidate_settings, progress=progress)
    async with running_nlu_server(
        candidate_settings, model=candidate_model, log_name="rasa-nlu-candidate.log", progress=progress
    ) as url:
        candidate = await score(url, "candidate")
    decision = verdict(current, candidate, tolerance=tolerance)
    if not decision.kept:
        return RetrainResult(merged, missing, current, candidate, decision, None, None)
    _replace_file(corrections, rendered)  # the next start trains (or finds cached) this very model
    reloaded = None
    if running_url:
        async with NLUClient.from_settings(settings, running_url) as client:
            await client.load_model(str(candidate_model.resolve()))
        reloaded = running_url
    return RetrainResult(merged, missing, current, candidate, decision, candidate_model, reloaded)


def _evaluation_files(settings: Settings) -> list[Path]:
    """Every labelled evaluation CSV this machine holds (the held-out sets beside the project, if present)."""
    roots = [settings.nlu_project_dir.parent / "eval", PROJECT_ROOT.parent / "shared" / "eval"]
    return [path for root in roots if root.is_dir() for path in sorted(root.glob("*.csv"))]


def _replace_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # never a half-written training file
