"""Fast model selection for the NLU classifier: stratified k-fold CV + dev sets, no Rasa training.

Why: a Rasa training run takes about a minute, too slow to compare dozens of settings.  This
script re-implements the classifier part of `nlu/project/config.yml` in scikit-learn on the
same tokens (the project's own `addons/tweet_text.Normalizer`): word-unigram and char_wb 2-5
counts, TF-IDF per block (sublinear tf, L2), a class-balanced LinearSVC, softmax(margins x
temperature) and the fallback threshold (below it -> `other`).  Figures agree with Rasa's to
about a point; confirm a choice with `dev_eval.py` before committing it.

Run with the Rasa venv's python (it has scikit-learn) from the repository root::

    python nlu/sources/select_model.py --csv nlu/eval/dev_tweets.csv --C 0.1 0.3 1 \
        --temperature 5 10 --threshold 0 0.2 0.3

Prints, for every setting, the category macro-F1 of 5-fold CV on the training data (folds
stratified by intent) and of each CSV.  `--lofo` adds leave-one-file-out over the first five
hand-written rounds (train on everything else, test on that file): a check across authors, since
a dev set written by whoever wrote the new data flatters that data.  `--ibm-holdout` adds the
support recall on the IBM customer-care tweets that build_training_data.py did not sample: real
tweets, all support, never trained on (needs the corpora).  Never pass shared/eval files here: they are for the
final figure only (dev_eval.py).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import statistics
import sys
from pathlib import Path

import numpy as np
import scipy.sparse
import yaml
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "nlu" / "project"
sys.path.insert(0, str(PROJECT / "addons"))
from tweet_text import Normalizer  # noqa: E402  (the project's tokenizer rules, stdlib only)

CATEGORIES = ("support", "sales", "event", "human", "smalltalk", "other")
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([\w:]+\)|\{[^}]*\})")


def load_file(path: Path) -> tuple[list[str], list[str]]:
    """(texts, intents) of every intent example in one Rasa NLU YAML file, annotations stripped."""
    texts, intents = [], []
    for item in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
        if "intent" not in item:
            continue
        for line in item["examples"].splitlines():
            if line.strip().startswith("- "):
                texts.append(_ANNOTATION.sub(r"\1", line.strip()[2:]))
                intents.append(item["intent"])
    return texts, intents


def _files(data_dir: Path, skip: tuple[str, ...]) -> list[Path]:
    return [p for p in sorted(data_dir.glob("*.yml")) if not any(s in p.name for s in skip)]


def load_training(data_dir: Path, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(texts, intents) of every intent example in data_dir/*.yml except files named by skip."""
    texts, intents = [], []
    for path in _files(data_dir, skip):
        t, i = load_file(path)
        texts += t
        intents += i
    return texts, intents


def load_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["category"].strip() for r in rows]


def load_categories() -> dict[str, str]:
    raw = yaml.safe_load((REPO / "content" / "taxonomy.yml").read_text(encoding="utf-8"))
    return {intent: spec["category"] for intent, spec in raw["intents"].items()}


_NORMALIZER = Normalizer()


def normalise(text: str) -> str:
    return " ".join(tok for tok, _, _ in _NORMALIZER(text))


class Model:
    """The classifier of config.yml: TF-IDF(word 1) + TF-IDF(char_wb 2-5) -> LinearSVC."""

    def __init__(self, C: float) -> None:
        self.C = C
        self.vectorizers = [
            CountVectorizer(token_pattern=r"(?u)\b\w+\b", lowercase=True),
            CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True),
        ]
        self.tfidf = [TfidfTransformer(sublinear_tf=True) for _ in self.vectorizers]

    def _x(self, texts: list[str], fit: bool) -> scipy.sparse.csr_matrix:
        blocks = []
        for vec, tfidf in zip(self.vectorizers, self.tfidf):
            counts = vec.fit_transform(texts) if fit else vec.transform(texts)
            blocks.append(tfidf.fit_transform(counts) if fit else tfidf.transform(counts))
        return scipy.sparse.hstack(blocks).tocsr()

    def fit(self, texts: list[str], intents: list[str]) -> "Model":
        self.clf = LinearSVC(C=self.C, class_weight="balanced", max_iter=5000, random_state=42)
        self.clf.fit(self._x(texts, fit=True), intents)
        return self

    def margins(self, texts: list[str]) -> np.ndarray:
        return np.atleast_2d(self.clf.decision_function(self._x(texts, fit=False)))


def route(model: Model, margins: np.ndarray, temperature: float, threshold: float,
          categories: dict[str, str]) -> list[str]:
    """Top intent -> category; confidence below the fallback threshold -> other."""
    scaled = margins * temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    out = []
    for row in probs:
        best = int(row.argmax())
        out.append("other" if row[best] < threshold else categories[model.clf.classes_[best]])
    return out


def macro_f1(gold: list[str], pred: list[str]) -> tuple[float, dict[str, float]]:
    per = {}
    for c in CATEGORIES:
        tp = sum(g == c == p for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        if tp + fn == 0:
            continue
        per[c] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return statistics.mean(per.values()), per


_CORPUS_OR_NEW = ("corpus_", "round6", "entities")


def lofo(data_dir: Path, skip: tuple[str, ...], C: float, temperature: float, threshold: float,
         categories: dict[str, str]) -> float:
    """Macro-F1 on each older hand-written file when trained on all the other files."""
    per_file = {p.name: load_file(p) for p in _files(data_dir, skip)}
    gold, pred = [], []
    for held in (n for n in per_file if not n.startswith(_CORPUS_OR_NEW)):
        texts, intents = per_file[held]
        if not texts:
            continue
        train_t = [t for n, (ts, _) in per_file.items() if n != held for t in ts]
        train_i = [i for n, (_, is_) in per_file.items() if n != held for i in is_]
        model = Model(C).fit([normalise(t) for t in train_t], train_i)
        margins = model.margins([normalise(t) for t in texts])
        gold += [categories[i] for i in intents]
        pred += route(model, margins, temperature, threshold, categories)
    return macro_f1(gold, pred)[0]


def ibm_holdout(data_dir: Path) -> list[str]:
    """Opening tweets of the IBM corpus (anonymised like the build) that are not in the training data."""
    import json

    sys.path.insert(0, str(REPO / "nlu" / "sources"))
    import build_training_data as build

    trained = {t.lower() for t in load_training(data_dir)[0]}
    out: list[str] = []
    for name in ("ibm_twitter_cdp_dev.json", "ibm_twitter_cdp_test.json"):
        path = build.DEFAULT_CORPORA / "ibm_twitter_customer_care" / name
        for conv in json.loads(path.read_text(encoding="utf-8")):
            text = build._clean(build.anonymise_tweet(conv["dialogContent"][0]["message"]))
            rule = next((i for i, r in build.IBM_RULES if r.search(text)), "product_issue")
            if 12 <= len(text) <= 280 and rule != "ask_human" and text.lower() not in trained:
                trained.add(text.lower())
                out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=PROJECT / "data")
    parser.add_argument("--skip", nargs="*", default=[], help="leave out training files whose name contains this")
    parser.add_argument("--csv", type=Path, action="append", default=[])
    parser.add_argument("--C", type=float, nargs="+", default=[0.3])
    parser.add_argument("--temperature", type=float, nargs="+", default=[10.0])
    parser.add_argument("--threshold", type=float, nargs="+", default=[0.25])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-category", action="store_true")
    parser.add_argument("--ibm-holdout", action="store_true", help="also support recall on unsampled IBM tweets")
    parser.add_argument("--lofo", action="store_true", help="also leave-one-file-out over the older hand-written files")
    args = parser.parse_args()
    if any("shared/eval" in str(p.resolve()) for p in args.csv):
        raise SystemExit("shared/eval is for the final figure only: measure it with dev_eval.py")

    categories = load_categories()
    texts, intents = load_training(args.data, tuple(args.skip))
    norm = [normalise(t) for t in texts]
    gold_cv = [categories[i] for i in intents]
    sets = {p.name: load_csv(p) for p in args.csv}
    if args.ibm_holdout:
        held = ibm_holdout(args.data)
        sets["ibm_holdout"] = (held, ["support"] * len(held))
    sets_norm = {k: [normalise(t) for t in v[0]] for k, v in sets.items()}
    counts = {c: sum(g == c for g in gold_cv) for c in CATEGORIES}
    print(f"{len(texts)} training examples: " + ", ".join(f"{c} {n}" for c, n in counts.items()))

    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=7).split(norm, intents))
    for C in args.C:
        # fit once per C; temperature and threshold only change the routing of the same margins
        cv_parts = []
        for train_idx, test_idx in folds:
            m = Model(C).fit([norm[i] for i in train_idx], [intents[i] for i in train_idx])
            cv_parts.append((m, m.margins([norm[i] for i in test_idx]), test_idx))
        full = Model(C).fit(norm, intents)
        dev_margins = {k: full.margins(v) for k, v in sets_norm.items()}
        for temp, thr in itertools.product(args.temperature, args.threshold):
            pred_cv = [""] * len(norm)
            for m, margins, test_idx in cv_parts:
                for i, p in zip(test_idx, route(m, margins, temp, thr, categories)):
                    pred_cv[i] = p
            cv, cv_per = macro_f1(gold_cv, pred_cv)
            line = f"C {C:<5g} T {temp:<4g} thr {thr:<5g} | CV {cv:.3f}"
            details = [("CV", cv_per)]
            for name, (_, gold) in sets.items():
                pred = route(full, dev_margins[name], temp, thr, categories)
                f, per = macro_f1(gold, pred)
                if name == "ibm_holdout":  # one category: report its recall, not an F1
                    f = sum(p == "support" for p in pred) / len(pred)
                    name = f"ibm_holdout({len(pred)}) support recall"
                line += f" | {name} {f:.3f}"
                details.append((name, per))
            if args.lofo:
                line += f" | LOFO {lofo(args.data, tuple(args.skip), C, temp, thr, categories):.3f}"
            print(line)
            if args.per_category:
                for name, per in details:
                    print(f"    {name:22s} " + " ".join(f"{c[:5]} {v:.2f}" for c, v in per.items()))


if __name__ == "__main__":
    main()
