"""Scoring the NLU against a labelled CSV (``text,category``): what `frontdesk nlu eval` prints.

The unit that matters to the brand is the *category* (the queue a message lands in), not the
intent, so the scores are per category: precision, recall, F1, support, macro-F1 and the
confusion matrix over the six categories, plus parse latency measured one request at a time.
The NLU answers intents; the caller passes how an intent maps to a category (the brand's taxonomy,
`bot.taxonomy.Taxonomy.category`: this module stays below the bot and does not import it).
"""

from __future__ import annotations

import asyncio
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frontdesk.core.vocabulary import CATEGORIES
from nlu.client import NLUClient

Progress = Callable[[str], None]
CategoryOf = Callable[[str | None], str]  # intent (None: no intent) -> one of CATEGORIES

# What `rasa init` writes (Rasa 3.6), minus the dialogue policies: the reference point for --baseline.
BASELINE_CONFIG = """\
# Rasa 3.6's default NLU pipeline, as `rasa init` writes it; written by `frontdesk nlu eval --baseline`.
recipe: default.v1
language: en
assistant_id: frontdesk-baseline
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
    constrain_similarities: true
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 100
    constrain_similarities: true
  - name: FallbackClassifier
    threshold: 0.3
    ambiguity_threshold: 0.1
policies: []
"""


class EvalDataError(ValueError):
    """The evaluation CSV is unusable; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class EvalRow:
    line: int
    text: str
    category: str


def load_eval_csv(path: Path) -> list[EvalRow]:
    """Read ``text,category`` rows (other columns ignored), rejecting what would skew the scores."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise EvalDataError(f"{path}: cannot read: {exc.strerror}") from None
    rows: list[EvalRow] = []
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("text", "category") if c not in columns]
        if missing:
            raise EvalDataError(
                f"{path}: missing column(s) {', '.join(missing)}; the header must include text,category "
                f"(found: {', '.join(columns) or 'no header'})"
            )
        reader.fieldnames = columns
        for record in reader:
            line = reader.line_num
            text = (record.get("text") or "").strip()
            category = (record.get("category") or "").strip().lower()
            if not text:
                raise EvalDataError(f"{path}: line {line}: empty text")
            if category not in CATEGORIES:
                raise EvalDataError(
                    f"{path}: line {line}: unknown category {record.get('category')!r}; "
                    f"use one of {', '.join(CATEGORIES)}"
                )
            rows.append(EvalRow(line=line, text=text, category=category))
    if not rows:
        raise EvalDataError(f"{path}: no rows after the header")
    return rows


@dataclass(frozen=True)
class CategoryScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    n: int
    accuracy: float
    macro_f1: float
    per_category: dict[str, CategoryScores]
    confusion: list[list[int]]  # rows: true category, columns: predicted, both in CATEGORIES order
    latency_ms: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "per_category": {
                cat: {
                    "precision": round(s.precision, 4),
                    "recall": round(s.recall, 4),
                    "f1": round(s.f1, 4),
                    "support": s.support,
                }
                for cat, s in self.per_category.items()
            },
            "confusion": {"labels": list(CATEGORIES), "matrix": self.confusion},
            "latency_ms": {k: round(v, 2) for k, v in self.latency_ms.items()},
        }


def score(truth: list[str], predicted: list[str]) -> tuple[dict[str, CategoryScores], float, list[list[int]]]:
    """Per-category scores, macro-F1 and the confusion matrix.

    Macro-F1 averages over the categories that occur in the truth or the predictions (as
    scikit-learn does), so a small CSV without, say, events is not scored zero for them.
    """
    index = {cat: i for i, cat in enumerate(CATEGORIES)}
    confusion = [[0] * len(CATEGORIES) for _ in CATEGORIES]
    for t, p in zip(truth, predicted, strict=True):
        confusion[index[t]][index[p]] += 1
    per_category: dict[str, CategoryScores] = {}
    present: list[float] = []
    for cat, i in index.items():
        tp = confusion[i][i]
        support = sum(confusion[i])
        predicted_n = sum(row[i] for row in confusion)
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_category[cat] = CategoryScores(precision, recall, f1, support)
        if support or predicted_n:
            present.append(f1)
    macro_f1 = sum(present) / len(present) if present else 0.0
    return per_category, macro_f1, confusion


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def evaluate(
    client: NLUClient,
    rows: list[EvalRow],
    *,
    category_of: CategoryOf,
    concurrency: int = 4,
    latency_sample: int = 200,
    progress: Progress | None = None,
) -> EvalReport:
    """Parse every row (``concurrency`` at a time), then time up to ``latency_sample`` parses in series.

    Latency is measured separately and sequentially because concurrent requests queue behind each
    other in Rasa's single worker, which would measure the queue rather than a parse.
    """
    say = progress or (lambda _: None)
    predicted: list[str | None] = [None] * len(rows)
    semaphore = asyncio.Semaphore(max(1, concurrency))
    done = 0
    step = max(1, len(rows) // 10)

    async def classify(i: int, row: EvalRow) -> None:
        nonlocal done
        async with semaphore:
            predicted[i] = category_of((await client.parse(row.text)).intent)
        done += 1
        if done % step == 0 or done == len(rows):
            say(f"eval: parsed {done}/{len(rows)}")

    await asyncio.gather(*(classify(i, row) for i, row in enumerate(rows)))
    latencies: list[float] = []
    sample = rows[: max(1, latency_sample)]
    say(f"eval: timing {len(sample)} parses one at a time")
    for row in sample:
        started = time.perf_counter()
        await client.parse(row.text)
        latencies.append((time.perf_counter() - started) * 1000)
    truth = [row.category for row in rows]
    per_category, macro_f1, confusion = score(truth, [p or "other" for p in predicted])
    accuracy = sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(rows)
    return EvalReport(
        n=len(rows),
        accuracy=accuracy,
        macro_f1=macro_f1,
        per_category=per_category,
        confusion=confusion,
        latency_ms={"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "n": len(latencies)},
    )


def format_report(report: EvalReport, title: str = "model") -> str:
    lines = [
        f"{title}: {report.n} messages, accuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}",
        "",
    ]
    lines.append(f"{'category':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}")
    for cat, s in report.per_category.items():
        lines.append(f"{cat:<10} {s.precision:>9.3f} {s.recall:>7.3f} {s.f1:>6.3f} {s.support:>8d}")
    lines += ["", "confusion (rows: true, columns: predicted)"]
    short = [c[:6] for c in CATEGORIES]
    lines.append(" " * 10 + "".join(f"{c:>8}" for c in short))
    for cat, row in zip(CATEGORIES, report.confusion, strict=True):
        lines.append(f"{cat:<10}" + "".join(f"{v:>8d}" for v in row))
    lat = report.latency_ms
    lines += [
        "",
        f"parse latency: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms (n={int(lat['n'])}, sequential)",
    ]
    return "\n".join(lines)


def format_comparison(model: EvalReport, baseline: EvalReport) -> str:
    lines = [f"{'':<14} {'model':>8} {'baseline':>9} {'delta':>8}"]

    def row(label: str, a: float, b: float, fmt: str = ".3f") -> None:
        lines.append(f"{label:<14} {a:>8{fmt}} {b:>9{fmt}} {a - b:>+8{fmt}}")

    row("macro-F1", model.macro_f1, baseline.macro_f1)
    row("accuracy", model.accuracy, baseline.accuracy)
    for cat in CATEGORIES:
        row(f"  F1 {cat}", model.per_category[cat].f1, baseline.per_category[cat].f1)
    row("p50 ms", model.latency_ms["p50"], baseline.latency_ms["p50"], ".1f")
    row("p99 ms", model.latency_ms["p99"], baseline.latency_ms["p99"], ".1f")
    return "\n".join(lines)


def write_baseline_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yml"
    path.write_text(BASELINE_CONFIG, encoding="utf-8")
    return path
