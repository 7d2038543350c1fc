"""Development measurement loop for the NLU model: train a config, parse CSV rows, score categories.

Run with the Rasa venv's python from the repository root, e.g.::

    /work/.devcache/rasa-venv/bin/python nlu/sources/dev_eval.py \
        --config nlu/project/config.yml --csv nlu/eval/clean_messages.csv

It trains into a temporary directory (`rasa train nlu`, cwd = nlu/project, PYTHONPATH including it,
so the custom tokenizer is found exactly as in production), loads the model with
`rasa.core.agent.Agent`, parses every row and prints per-category precision/recall/F1, macro-F1,
a confusion table and parse latency.  Categories come from content/taxonomy.yml (top intent ->
category; `nlu_fallback` -> other).  It is a measuring tool only: nothing here trains on the CSVs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

os.environ.setdefault("LOG_LEVEL", "ERROR")  # before rasa is imported: no per-message debug lines
os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "nlu" / "project"
CATEGORIES = ("support", "sales", "event", "human", "smalltalk", "other")


_REPORT: list[str] = []


def say(line: str = "") -> None:
    """Print a report line (and keep it for --report: the rest of stdout is Rasa's noise)."""
    print(line)
    _REPORT.append(line)


def load_categories() -> dict[str, str]:
    raw = yaml.safe_load((REPO / "content" / "taxonomy.yml").read_text(encoding="utf-8"))
    return {intent: spec["category"] for intent, spec in raw["intents"].items()}


def train(config: Path, out_dir: Path) -> tuple[Path, float]:
    env = {**os.environ, "PYTHONPATH": f"{PROJECT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rasa = Path(sys.executable).parent / "rasa"
    cmd = [str(rasa), "train", "nlu", "--config", str(config.resolve()), "--nlu", "data",
           "--domain", "domain.yml", "--out", str(out_dir), "--fixed-model-name", "dev"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"rasa train failed ({proc.returncode})")
    warnings = [l for l in (proc.stdout + proc.stderr).splitlines() if "Misaligned" in l or "UserWarning" in l]
    for w in warnings[:5]:
        say("  warn: " + w[:200])
    return out_dir / "dev.tar.gz", elapsed


def score(gold: list[str], pred: list[str]) -> tuple[dict[str, tuple[float, float, float, int]], float]:
    out = {}
    for c in CATEGORIES:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        out[c] = (prec, rec, f1, tp + fn)
    present = [c for c in CATEGORIES if out[c][3]]
    return out, statistics.mean(out[c][2] for c in present)


async def evaluate(model: Path, csv_paths: list[Path], show_errors: bool) -> None:
    from rasa.core.agent import Agent

    sys.path.insert(0, str(PROJECT))  # the custom tokenizer, as `rasa run` finds it via PYTHONPATH

    agent = Agent.load(str(model))
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("rasa", "structlog"):
        logging.getLogger(name).setLevel(logging.ERROR)
    categories = load_categories()
    for text in ("@Brand hi https://t.co/abc", "@Brand order #A48213 never arrived, mail me at a@b.com"):
        r = await agent.parse_message(text)
        say(f"  probe {text!r}: intent={r['intent']['name']} normalized={r.get('normalized_text')!r} "
              f"entities={[(e['entity'], e['value'], e.get('extractor')) for e in r['entities']]}")
    for path in csv_paths:
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        gold, pred, latencies, cpu, errors = [], [], [], [], []
        for row in rows:
            started, cpu_started = time.perf_counter(), time.process_time()
            r = await agent.parse_message(row["text"])
            latencies.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            intent = r["intent"]["name"]
            cat = categories.get(intent, "other")
            gold.append(row["category"])
            pred.append(cat)
            if cat != row["category"]:
                errors.append((row["category"], cat, intent, round(r["intent"]["confidence"], 2), row["text"][:90]))
        per, macro = score(gold, pred)
        say(f"\n== {path.name}: {len(rows)} rows, macro-F1 {macro:.3f}, accuracy "
              f"{sum(g == p for g, p in zip(gold, pred)) / len(rows):.3f}")
        for c, (p, r_, f, n) in per.items():
            say(f"  {c:10s} P {p:.2f} R {r_:.2f} F1 {f:.2f} (n={n})")
        conf = Counter(zip(gold, pred))
        say("  confusion (rows gold, cols pred): " + " ".join(f"{c[:5]:>6s}" for c in CATEGORIES))
        for g in CATEGORIES:
            say(f"  {g:33s}" + " ".join(f"{conf[(g, p)]:6d}" for p in CATEGORIES))
        fallbacks = sum(e[2] == "nlu_fallback" for e in errors)
        say(f"  misrouted by nlu_fallback: {fallbacks}")
        lat = sorted(latencies)
        say(f"  latency ms: p50 {statistics.median(lat):.1f} p95 {lat[int(len(lat) * 0.95) - 1]:.1f} "
            f"(CPU time p50 {statistics.median(cpu):.1f}: less inflated by other jobs than wall time)")
        if show_errors and "shared/eval" not in str(path.resolve()):  # never read eval rows one by one
            for e in errors:
                say(f"    {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=PROJECT / "config.yml")
    parser.add_argument("--csv", type=Path, action="append", required=True)
    parser.add_argument("--model", type=Path, help="score an already trained model instead of training")
    parser.add_argument("--report", type=Path, help="also write the report lines to this file")
    parser.add_argument("--save", type=Path, help="copy the trained model archive here")
    parser.add_argument("--errors", action="store_true", help="print misrouted rows (clean set only!)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nlu-dev-") as tmp:
        model = args.model
        if model is None:
            model, elapsed = train(args.config, Path(tmp))
            size = model.stat().st_size / 1e6
            say(f"config {args.config}: trained in {elapsed:.0f}s, model {size:.1f} MB")
            if args.save:
                shutil.copy(model, args.save)
        asyncio.run(evaluate(model, args.csv, args.errors))
    if args.report:
        args.report.write_text("\n".join(_REPORT) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
