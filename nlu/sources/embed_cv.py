"""Cross-validation of the intent classifier with and without MiniLM sentence embeddings.

Run with the Rasa venv's python from the repository root::

    PYTHONPATH=nlu/project <rasa-venv>/bin/python nlu/sources/embed_cv.py [--grid small|full]

Re-creates the features of nlu/project/config.yml with scikit-learn on the TweetNormalizer's
tokens (word unigrams + char_wb 2-5 counts -> TF-IDF, sublinear tf, L2 per block; the same as
TfidfLinearIntentClassifier), adds the L2-normalised all-MiniLM-L6-v2 embedding as a third block
times a weight, fits a class-balanced LinearSVC and scores category macro-F1 by stratified 5-fold
cross-validation over the training examples (stratified by intent) and, trained on all of them,
on nlu/eval/clean_messages.csv.  Decisions (embedding text variant, weight, C, temperature and
fallback threshold) are made on these two figures only; the real-tweet file is never read here.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import logging
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import scipy.sparse
import yaml

os.environ.setdefault("LOG_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "nlu" / "project"
sys.path.insert(0, str(PROJECT))
CATEGORIES = ("support", "sales", "event", "human", "smalltalk", "other")

from addons.sentence_embedder import embedding_text  # noqa: E402
from addons.tweet_text import Normalizer  # noqa: E402


def _load_examples() -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(PROJECT / "data"))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples if m.get("text")]


def _categories() -> dict[str, str]:
    raw = yaml.safe_load((REPO / "nlu" / "taxonomy.yml").read_text(encoding="utf-8"))
    return {intent: spec["category"] for intent, spec in raw["intents"].items()}


def _macro_f1(gold: list[str], pred: list[str]) -> float:
    scores = []
    for c in CATEGORIES:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        if tp + fn == 0:
            continue
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn)
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return statistics.mean(scores)


def _embeddings(texts: list[str], variant: str, cache_dir: Path, layers: int = 6) -> np.ndarray:
    from addons.minilm import shared_encoder

    prepared = [embedding_text(t, variant) for t in texts]
    key = hashlib.sha256(("\n".join(prepared) + variant + str(layers)).encode()).hexdigest()[:16]
    path = cache_dir / f"emb-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = shared_encoder(layers=layers).encode(prepared)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


class _Sparse:
    """word + char_wb counts over the normalised tokens, TF-IDF fitted on the training rows."""

    def __init__(self, train_docs: list[str]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

        self.vecs = [
            CountVectorizer(token_pattern=r"(?u)\b\w+\b").fit(train_docs),
            CountVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit(train_docs),
        ]
        self.tfidf = [TfidfTransformer(sublinear_tf=True).fit(v.transform(train_docs)) for v in self.vecs]

    def __call__(self, docs: list[str]) -> scipy.sparse.csr_matrix:
        return scipy.sparse.hstack([t.transform(v.transform(docs)) for v, t in zip(self.vecs, self.tfidf)]).tocsr()


def _fit_predict(tr, te, docs, emb, labels, weight, C, dense_only=False):
    from sklearn.svm import LinearSVC

    sparse = _Sparse([docs[i] for i in tr])
    def feats(idx):
        parts = [] if dense_only else [sparse([docs[i] for i in idx])]
        if emb is not None and weight > 0:
            parts.append(scipy.sparse.csr_matrix(emb[idx] * weight))
        return scipy.sparse.hstack(parts).tocsr()
    clf = LinearSVC(C=C, class_weight="balanced", max_iter=5000, random_state=42)
    clf.fit(feats(tr), [labels[i] for i in tr])
    return clf, clf.decision_function(feats(te))


def _route(clf, margins, categories, temperature, threshold) -> list[str]:
    scaled = margins * temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = probs.argmax(axis=1)
    return [
        "other" if probs[r, k] < threshold else categories.get(str(clf.classes_[k]), "other")
        for r, k in enumerate(top)
    ]


def _probs(margins: np.ndarray, temperature: float = 10.0) -> np.ndarray:
    scaled = margins * temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _cascade(texts, labels, docs, categories, folds, all_idx, clean_idx, clean_gold, cache, weight=1.0, layers=6):
    """Embed only when the n-gram model's top confidence is below a threshold: F1 vs share embedded
    (overall, and of the IBM customer tweets, the longest and most tweet-like texts)."""
    emb = _embeddings(texts, "words", cache, layers)
    ibm = set(_ibm_texts())
    runs = [(te, _fit_predict(tr, te, docs, emb, labels, 0.0, 0.3), _fit_predict(tr, te, docs, emb, labels, weight, 0.3))
            for tr, te in folds]
    clean_runs = [(clean_idx, _fit_predict(all_idx, clean_idx, docs, emb, labels, 0.0, 0.3),
                   _fit_predict(all_idx, clean_idx, docs, emb, labels, weight, 0.3))]
    for threshold in (0.0, 0.8, 0.9, 0.95, 1.01):
        out = []
        for name, group in (("cv", runs), ("clean", clean_runs)):
            gold, pred, embedded, ibm_seen, ibm_embedded = [], [], 0, 0, 0
            for te, (clf_s, m_s), (clf_d, m_d) in group:
                p_s, p_d = _probs(m_s), _probs(m_d)
                for r, i in enumerate(te):
                    use_dense = p_s[r].max() < threshold
                    embedded += use_dense
                    if texts[i] in ibm:
                        ibm_seen += 1
                        ibm_embedded += use_dense
                    clf, p = (clf_d, p_d[r]) if use_dense else (clf_s, p_s[r])
                    k = int(p.argmax())
                    pred.append("other" if p[k] < 0.25 else categories.get(str(clf.classes_[k]), "other"))
                gold += clean_gold if name == "clean" else [categories[labels[i]] for i in te]
            share = f", IBM {ibm_embedded / ibm_seen:.0%}" if ibm_seen else ""
            out.append(f"{name} {_macro_f1(gold, pred):.3f} (embedded {embedded / len(gold):.0%}{share})")
        print(f"cascade L{layers}, embed below confidence {threshold:.2f}: " + "  ".join(out), flush=True)


def _ibm_texts() -> list[str]:
    raw = yaml.safe_load((PROJECT / "data" / "corpus_ibm_twitter.yml").read_text(encoding="utf-8"))
    return [line[2:] for item in raw["nlu"] if "examples" in item
            for line in item["examples"].splitlines() if line.startswith("- ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=("small", "full", "variants", "light", "cascade", "layers"), default="small")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/frontdesk-embed-cv"))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    from sklearn.model_selection import StratifiedKFold

    categories = _categories()
    examples = _load_examples()
    with (REPO / "nlu" / "eval" / "clean_messages.csv").open(encoding="utf-8") as fh:
        clean = list(csv.DictReader(fh))
    texts = [t for t, _ in examples] + [r["text"] for r in clean]
    labels = [i for _, i in examples]
    n = len(examples)
    normalize = Normalizer()
    docs = [" ".join(tok for tok, _, _ in normalize(t)) for t in texts]
    clean_gold = [r["category"] for r in clean]
    folds = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(np.zeros(n), labels))
    all_idx, clean_idx = np.arange(n), np.arange(n, n + len(clean))

    if args.grid == "layers":
        for layers in (0, 1, 2, 3, 4):
            emb = _embeddings(texts, "words", args.cache, layers)
            for weight in (0.75, 1.0):
                cv_pred, cv_gold = [], []
                for tr, te in folds:
                    clf, margins = _fit_predict(tr, te, docs, emb, labels, weight, 0.3)
                    cv_pred += _route(clf, margins, categories, 10.0, 0.25)
                    cv_gold += [categories[labels[i]] for i in te]
                clf_all, m = _fit_predict(all_idx, clean_idx, docs, emb, labels, weight, 0.3)
                clean_f1 = _macro_f1(clean_gold, _route(clf_all, m, categories, 10.0, 0.25))
                print(f"layers {layers} w {weight}: cv {_macro_f1(cv_gold, cv_pred):.3f}  clean {clean_f1:.3f}", flush=True)
        return
    if args.grid == "cascade":
        for layers in (2, 3, 4, 6):
            _cascade(texts, labels, docs, categories, folds, all_idx, clean_idx, clean_gold, args.cache, layers=layers)
        return
    variants = {"small": ["words"], "light": ["light"]}.get(args.grid, ["words", "tokens", "original"])
    weights = {"full": [0.0, 0.75, 1.0, 1.25, 1.5], "small": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]}.get(args.grid, [0.75, 1.0, 1.25])
    cs = [0.1, 0.3, 1.0] if args.grid == "full" else [0.3]
    print(f"{n} training examples, {len(clean)} clean rows")
    for variant in variants:
        emb = _embeddings(texts, variant, args.cache)
        for weight, C in itertools.product(weights, cs):
            cv_pred, cv_gold, fold_margins = [], [], []
            for tr, te in folds:
                clf, margins = _fit_predict(tr, te, docs, emb, labels, weight, C)
                fold_margins.append((clf, margins, te))
            clf_all, clean_margins = _fit_predict(all_idx, clean_idx, docs, emb, labels, weight, C)
            for temperature, threshold in [(10.0, 0.0), (10.0, 0.25), (10.0, 0.3), (5.0, 0.25), (20.0, 0.25)]:
                cv_pred, cv_gold = [], []
                for clf, margins, te in fold_margins:
                    cv_pred += _route(clf, margins, categories, temperature, threshold)
                    cv_gold += [categories[labels[i]] for i in te]
                clean_pred = _route(clf_all, clean_margins, categories, temperature, threshold)
                print(
                    f"{variant:8s} w {weight:3.1f} C {C:4.2f} T {temperature:4.1f} fb {threshold:4.2f}: "
                    f"cv {_macro_f1(cv_gold, cv_pred):.3f}  clean {_macro_f1(clean_gold, clean_pred):.3f}",
                    flush=True,
                )
        if args.grid != "small":
            for C in (0.3, 1.0, 3.0) if args.grid == "full" else (1.0,):
                cv_pred, cv_gold = [], []
                for tr, te in folds:
                    clf, margins = _fit_predict(tr, te, docs, emb, labels, 1.0, C, dense_only=True)
                    cv_pred += _route(clf, margins, categories, 10.0, 0.0)
                    cv_gold += [categories[labels[i]] for i in te]
                clf_all, m = _fit_predict(all_idx, clean_idx, docs, emb, labels, 1.0, C, dense_only=True)
                print(
                    f"{variant:8s} embedding only, C {C}: cv {_macro_f1(cv_gold, cv_pred):.3f}  "
                    f"clean {_macro_f1(clean_gold, _route(clf_all, m, categories, 10.0, 0.0)):.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
