"""Cross-validation of the intent classifier with and without MiniLM sentence vectors.

Run with the Rasa venv's python from the repository root (the model package must be installed)::

    PYTHONPATH=nlu/project <rasa-venv>/bin/python nlu/sources/embed_cv.py --grid weights

Re-creates the features of nlu/project/config.yml with scikit-learn on the TweetNormalizer's
tokens (word unigrams + char_wb 2-5 counts -> TF-IDF, sublinear tf, L2 per block, exactly as
TfidfLinearIntentClassifier does), appends the L2-normalised all-MiniLM-L6-v2 vector times a
weight, fits a class-balanced LinearSVC and scores category macro-F1 two ways: stratified 5-fold
cross-validation over the training examples (folds stratified by intent, TF-IDF fitted per fold)
and, trained on all of them, nlu/eval/clean_messages.csv.  Every choice in config.yml (input
variant, layers, weight, C, temperature, fallback threshold) was made on these two figures; the
real-tweet file is never read here.  Embeddings are cached under --cache.

Grids: ``weights`` (weight x C x temperature/fallback), ``inputs`` (what the model reads),
``layers`` (how many of the 6 layers), ``cascade`` (embed only when the n-gram model is unsure),
``dev`` (layers x weight x C, trained on every example and scored on the dev sets in nlu/eval/
and the clean set; from round 8 on the dev sets' mean decides), ``lofo`` (leave one author's files out),
``data`` (the current settings with and without each round-10 author's files: dev sets, clean set, and
leave-one-author-out over the earlier authors).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import scipy.sparse
import yaml

os.environ.setdefault("LOG_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "nlu" / "project"
sys.path.insert(0, str(PROJECT))
CATEGORIES = ("support", "sales", "event", "human", "smalltalk", "other")
# dev_round10 was written in round 10 by an author who had read no training data and no other set.
DEV_SETS = ("dev_tweets", "dev_clean", "dev_addressed", "dev_round10")

from addons.sentence_embedder import embedding_text  # noqa: E402
from addons.tweet_text import Normalizer  # noqa: E402


@dataclass
class Setup:
    """Training examples + clean rows (appended, so one embedding matrix covers both) and folds."""

    texts: List[str]
    docs: List[str]  # normalised tokens joined by spaces: what the count featurizers read
    labels: List[str]  # intents of the training examples
    clean_gold: List[str]
    dev: Dict[str, Tuple[np.ndarray, List[str]]]  # dev set name -> (rows in texts, gold categories)
    categories: Dict[str, str]
    folds: List[Tuple[np.ndarray, np.ndarray]]
    cache: Path

    @property
    def n_train(self) -> int:
        return len(self.labels)


def _setup(cache: Path) -> Setup:
    from rasa.shared.nlu.training_data.loading import load_data
    from sklearn.model_selection import StratifiedKFold

    data = load_data(str(PROJECT / "data"))
    examples = [(m.get("text"), m.get("intent")) for m in data.intent_examples if m.get("text")]
    with (REPO / "nlu" / "eval" / "clean_messages.csv").open(encoding="utf-8") as fh:
        clean = list(csv.DictReader(fh))
    taxonomy = yaml.safe_load((REPO / "content" / "taxonomy.yml").read_text(encoding="utf-8"))
    texts = [t for t, _ in examples] + [r["text"] for r in clean]
    labels = [i for _, i in examples]
    dev = {}
    for name in DEV_SETS:
        with (REPO / "nlu" / "eval" / f"{name}.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        dev[name] = (np.arange(len(texts), len(texts) + len(rows)), [r["category"] for r in rows])
        texts += [r["text"] for r in rows]
    normalize = Normalizer()
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels)
    return Setup(
        texts=texts,
        docs=[" ".join(tok for tok, _, _ in normalize(t)) for t in texts],
        labels=labels,
        clean_gold=[r["category"] for r in clean],
        dev=dev,
        categories={intent: spec["category"] for intent, spec in taxonomy["intents"].items()},
        folds=list(folds),
        cache=cache,
    )


def _macro_f1(gold: List[str], pred: List[str]) -> float:
    scores = []
    for c in CATEGORIES:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        if tp + fn:
            prec = tp / (tp + fp) if tp + fp else 0.0
            rec = tp / (tp + fn)
            scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return statistics.mean(scores)


def _embeddings(s: Setup, variant: str = "words", layers: int = 6) -> np.ndarray:
    from addons.minilm import shared_encoder

    prepared = [embedding_text(t, variant) for t in s.texts]
    key = hashlib.sha256(("\n".join(prepared) + variant + str(layers)).encode()).hexdigest()[:16]
    path = s.cache / f"emb-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = shared_encoder(layers=layers).encode(prepared)
    s.cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def _fit(s: Setup, train: np.ndarray, test: np.ndarray, emb: np.ndarray | None, weight: float, C: float,
         sparse: bool = True):  # fmt: skip
    """Fit on ``train`` rows, return (classifier, margins of the ``test`` rows)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
    from sklearn.svm import LinearSVC

    train_docs = [s.docs[i] for i in train]
    vectorizers = [
        CountVectorizer(token_pattern=r"(?u)\b\w+\b").fit(train_docs),
        CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit(train_docs),
    ]
    tfidfs = [TfidfTransformer(sublinear_tf=True).fit(v.transform(train_docs)) for v in vectorizers]

    def features(rows: np.ndarray) -> scipy.sparse.csr_matrix:
        docs = [s.docs[i] for i in rows]
        blocks = [t.transform(v.transform(docs)) for v, t in zip(vectorizers, tfidfs)] if sparse else []
        if emb is not None and weight > 0:
            blocks.append(scipy.sparse.csr_matrix(emb[rows] * weight))
        return scipy.sparse.hstack(blocks).tocsr()

    clf = LinearSVC(C=C, class_weight="balanced", max_iter=5000, random_state=42)
    clf.fit(features(train), [s.labels[i] for i in train])
    return clf, clf.decision_function(features(test))


def _probs(margins: np.ndarray, temperature: float) -> np.ndarray:
    scaled = margins * temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _route(s: Setup, clf, probs: np.ndarray, threshold: float) -> List[str]:
    """Top intent -> category; below the fallback threshold -> other (as FallbackClassifier does)."""
    top = probs.argmax(axis=1)
    return [
        "other" if probs[r, k] < threshold else s.categories.get(str(clf.classes_[k]), "other")
        for r, k in enumerate(top)
    ]


def _score(s: Setup, emb, weight: float, C: float = 0.3, routing=((10.0, 0.25),), sparse: bool = True):
    """[(temperature, threshold, CV macro-F1, clean macro-F1)] for one feature set and C."""
    runs = [(_fit(s, tr, te, emb, weight, C, sparse), te) for tr, te in s.folds]
    train_all, clean_rows = np.arange(s.n_train), np.arange(s.n_train, s.n_train + len(s.clean_gold))
    clf_all, clean_margins = _fit(s, train_all, clean_rows, emb, weight, C, sparse)
    out = []
    for temperature, threshold in routing:
        cv_gold, cv_pred = [], []
        for (clf, margins), te in runs:
            cv_pred += _route(s, clf, _probs(margins, temperature), threshold)
            cv_gold += [s.categories[s.labels[i]] for i in te]
        clean_pred = _route(s, clf_all, _probs(clean_margins, temperature), threshold)
        out.append((temperature, threshold, _macro_f1(cv_gold, cv_pred), _macro_f1(s.clean_gold, clean_pred)))
    return out


def _grid_weights(s: Setup) -> None:
    emb = _embeddings(s)
    routing = ((10.0, 0.25), (10.0, 0.0), (10.0, 0.3), (5.0, 0.25), (20.0, 0.25))
    for weight in (0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        for C in (0.1, 0.3, 1.0):
            for t, fb, cv, clean in _score(s, emb, weight, C, routing):
                print(f"weight {weight:4.2f} C {C:4.2f} T {t:4.1f} fallback {fb:4.2f}: "
                      f"cv {cv:.3f} clean {clean:.3f}")


def _grid_inputs(s: Setup) -> None:
    for variant in ("words", "tokens", "original", "light"):
        emb = _embeddings(s, variant)
        for weight in (0.75, 1.0):
            (_, _, cv, clean), = _score(s, emb, weight)
            print(f"input {variant:8s} weight {weight:4.2f}: cv {cv:.3f} clean {clean:.3f}")
        (_, _, cv, clean), = _score(s, emb, 1.0, C=1.0, routing=((10.0, 0.0),), sparse=False)
        print(f"input {variant:8s} embedding alone (C 1): cv {cv:.3f} clean {clean:.3f}")


def _grid_layers(s: Setup) -> None:
    for layers in (0, 1, 2, 3, 4, 6):
        emb = _embeddings(s, "words", layers)
        for weight in (0.75, 1.0):
            (_, _, cv, clean), = _score(s, emb, weight)
            print(f"layers {layers} weight {weight:4.2f}: cv {cv:.3f} clean {clean:.3f}")


def _grid_cascade(s: Setup, weight: float = 1.0) -> None:
    """Embed only when the n-gram model's top confidence is below a threshold: F1 against the share
    of messages that pay for the encoder (overall, and of the IBM customer tweets: the most
    tweet-like, longest texts)."""
    raw = yaml.safe_load((PROJECT / "data" / "corpus_ibm_twitter.yml").read_text(encoding="utf-8"))
    ibm = {line[2:] for item in raw["nlu"] if "examples" in item
           for line in item["examples"].splitlines() if line.startswith("- ")}  # fmt: skip
    train_all, clean_rows = np.arange(s.n_train), np.arange(s.n_train, s.n_train + len(s.clean_gold))
    for layers in (2, 3, 4, 6):
        emb = _embeddings(s, "words", layers)
        groups = {
            "cv": [(te, _fit(s, tr, te, emb, 0.0, 0.3), _fit(s, tr, te, emb, weight, 0.3))
                   for tr, te in s.folds],
            "clean": [(clean_rows, _fit(s, train_all, clean_rows, emb, 0.0, 0.3),
                       _fit(s, train_all, clean_rows, emb, weight, 0.3))],
        }  # fmt: skip
        for threshold in (0.0, 0.8, 0.9, 0.95, 1.01):
            report = []
            for name, runs in groups.items():
                gold, pred, embedded, ibm_seen, ibm_embedded = [], [], 0, 0, 0
                for te, (clf_s, m_s), (clf_d, m_d) in runs:
                    p_s, p_d = _probs(m_s, 10.0), _probs(m_d, 10.0)
                    for r, i in enumerate(te):
                        dense = bool(p_s[r].max() < threshold)
                        embedded += dense
                        if s.texts[i] in ibm:
                            ibm_seen, ibm_embedded = ibm_seen + 1, ibm_embedded + dense
                        clf, p = (clf_d, p_d[r : r + 1]) if dense else (clf_s, p_s[r : r + 1])
                        pred += _route(s, clf, p, 0.25)
                    gold += s.clean_gold if name == "clean" else [s.categories[s.labels[i]] for i in te]
                share = f", IBM {ibm_embedded / ibm_seen:.0%}" if ibm_seen else ""
                f1 = _macro_f1(gold, pred)
                report.append(f"{name} {f1:.3f} (embedded {embedded / len(gold):.0%}{share})")
            print(f"cascade, {layers} layers, embed below confidence {threshold:.2f}: " + "  ".join(report))


def _grid_dev(s: Setup) -> None:
    """Trained on every example, scored on the three dev sets (their mean decides) and the clean set."""
    everything, train_all = np.arange(len(s.texts)), np.arange(s.n_train)
    clean_rows = np.arange(s.n_train, s.n_train + len(s.clean_gold))
    sets = {"clean": (clean_rows, s.clean_gold), **s.dev}
    for layers in (3, 4):
        emb = _embeddings(s, "words", layers)
        for weight in (1.0, 1.5, 2.0, 2.5, 3.0):
            for C in (0.3, 0.5, 0.7, 1.0):
                clf, margins = _fit(s, train_all, everything, emb, weight, C)
                pred = _route(s, clf, _probs(margins, 10.0), 0.25)
                f1 = {name: _macro_f1(gold, [pred[i] for i in rows])
                      for name, (rows, gold) in sets.items()}  # fmt: skip
                mean = statistics.mean(f1[name] for name in DEV_SETS)
                scores = " ".join(f"{k} {v:.3f}" for k, v in f1.items())
                print(f"layers {layers} weight {weight:4.2f} C {C:4.2f}: dev mean {mean:.3f} {scores}",
                      flush=True)  # fmt: skip


# Leave-one-author-out: each group is a set of files one author wrote without reading the others.
_AUTHOR_GROUPS = {
    "rounds 1-5": ("support", "sales", "events", "human", "smalltalk", "other", "more_tweets", "events_more",
                   "round4", "round5"),
    "round 6": ("round6_*",),
    "round 7": ("round7_*",),
    "round 8": ("round8_*",),
}  # fmt: skip

# Round 10's two authors; each wrote its files without reading any other training data.
_ROUND10_AUTHORS = {
    "round 10 A": ("round10_other", "round10_smalltalk", "round10_human"),
    "round 10 B": ("round10_support", "round10_sales", "round10_event"),
}


def _author_rows(s: Setup, groups: Dict[str, Tuple[str, ...]]) -> Dict[str, np.ndarray]:
    """Training-row indices of each group's files (file-name patterns without ``.yml``)."""
    from rasa.shared.nlu.training_data.loading import load_data

    row_of = {(s.texts[i], s.labels[i]): i for i in reversed(range(s.n_train))}
    out = {}
    for name, patterns in groups.items():
        rows = set()
        for path in (p for pattern in patterns for p in (PROJECT / "data").glob(f"{pattern}.yml")):
            rows |= {row_of[key] for m in load_data(str(path)).intent_examples
                     if (key := (m.get("text"), m.get("intent"))) in row_of}  # fmt: skip
        out[name] = np.array(sorted(rows), dtype=int)
    return out


def _lofo_f1(s: Setup, groups: Dict[str, np.ndarray], emb, weight: float, C: float,
             exclude: np.ndarray | None = None) -> Dict[str, float]:  # fmt: skip
    """Macro-F1 on each held-out group, trained on every other row (minus ``exclude``)."""
    f1 = {}
    for name, held_out in groups.items():
        train = np.setdiff1d(np.arange(s.n_train), held_out)
        if exclude is not None:
            train = np.setdiff1d(train, exclude)
        clf, margins = _fit(s, train, held_out, emb, weight, C)
        gold = [s.categories[s.labels[i]] for i in held_out]
        f1[name] = _macro_f1(gold, _route(s, clf, _probs(margins, 10.0), 0.25))
    return f1


def _grid_lofo(s: Setup) -> None:
    """Train on everything but one author's files, score that author's examples (category macro-F1)."""
    groups = _author_rows(s, {**_AUTHOR_GROUPS, **_ROUND10_AUTHORS})
    print("held-out rows: " + ", ".join(f"{k} {len(v)}" for k, v in groups.items()))
    for layers in (3, 4):
        emb = _embeddings(s, "words", layers)
        for weight, C in ((1.0, 0.5), (1.5, 0.3), (2.0, 0.3), (2.0, 0.5), (2.5, 0.5), (3.0, 0.5)):
            f1 = _lofo_f1(s, groups, emb, weight, C)
            scores = ", ".join(f"{k} {v:.3f}" for k, v in f1.items())
            print(f"layers {layers} weight {weight:4.2f} C {C:4.2f}: mean {statistics.mean(f1.values()):.3f} "
                  f"({scores})", flush=True)


def _grid_data(s: Setup, layers: int = 3, weight: float = 2.0, C: float = 0.5) -> None:
    """The current settings trained with and without each round-10 author's files."""
    earlier = _author_rows(s, _AUTHOR_GROUPS)
    new = _author_rows(s, _ROUND10_AUTHORS)
    print("round-10 rows: " + ", ".join(f"{k} {len(v)}" for k, v in new.items()), flush=True)
    emb = _embeddings(s, "words", layers)
    everything = np.arange(len(s.texts))
    clean_rows = np.arange(s.n_train, s.n_train + len(s.clean_gold))
    sets = {"clean": (clean_rows, s.clean_gold), **s.dev}
    all_new = np.concatenate(list(new.values()))
    variants = {"without round 10": all_new, **{f"without {k}": v for k, v in new.items()},
                "with round 10": np.array([], dtype=int)}  # fmt: skip
    for label, excluded in variants.items():
        train = np.setdiff1d(np.arange(s.n_train), excluded)
        clf, margins = _fit(s, train, everything, emb, weight, C)
        pred = _route(s, clf, _probs(margins, 10.0), 0.25)
        f1 = {name: _macro_f1(gold, [pred[i] for i in rows]) for name, (rows, gold) in sets.items()}
        lofo = _lofo_f1(s, earlier, emb, weight, C, exclude=excluded)
        print(f"{label:>20}: dev mean {statistics.mean(f1[n] for n in DEV_SETS):.3f} "
              + " ".join(f"{k} {v:.3f}" for k, v in f1.items())
              + f" | lofo mean {statistics.mean(lofo.values()):.3f} "
              + ", ".join(f"{k} {v:.3f}" for k, v in lofo.items()), flush=True)


GRIDS = {
    "data": _grid_data,
    "dev": _grid_dev,
    "lofo": _grid_lofo,
    "weights": _grid_weights,
    "inputs": _grid_inputs,
    "layers": _grid_layers,
    "cascade": _grid_cascade,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="weights")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/frontdesk-embed-cv"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    setup = _setup(args.cache)
    print(f"{setup.n_train} training examples, {len(setup.clean_gold)} clean rows", flush=True)
    GRIDS[args.grid](setup)


if __name__ == "__main__":
    main()
