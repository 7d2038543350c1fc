"""Intent classifier: TF-IDF n-gram features (+ dense sentence embeddings) and a linear SVM.

Why not Rasa's own classifiers: on short, messy tweets with a few thousand training examples,
measured on held-out data (nlu/DATA.md, "Model"), DIET needs minutes of CPU and its confidence is
unstable, and LogisticRegressionClassifier works on raw counts where long messages and frequent
n-grams dominate.  Re-weighting each featurizer's sentence vector by TF-IDF (sublinear tf, L2
norm per featurizer, so word and character n-grams weigh the same) and fitting a class-balanced
LinearSVC trains in seconds and classified real tweets clearly better.  Dense sentence features
(SentenceEmbeddingFeaturizer's L2-normalised MiniLM embedding) are appended as they are, times
``dense_weight``, so the SVM sees both what was said (n-grams) and what it means (the embedding).

Confidences are a softmax over the SVM margins (``temperature`` scales them), so Rasa's
FallbackClassifier and the intent ranking keep working.  Uses rasa, numpy, scipy and
scikit-learn only (all Rasa dependencies); the fitted model is stored with pickle inside the
Rasa model archive, which is trusted like any model file.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Dict, List, NamedTuple, Optional, Text, Tuple

import numpy as np
import scipy.sparse
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.svm import LinearSVC

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

_MODEL_FILE = "tfidf_linear.pkl"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class TfidfLinearIntentClassifier(GraphComponent, IntentClassifier):
    """Class-balanced linear SVM over TF-IDF-weighted sparse sentence features (+ weighted dense ones)."""

    @classmethod
    def required_components(cls) -> List[type]:
        return [Featurizer]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "C": 0.3,  # SVM regularisation: lower = smoother, measured best 0.2-0.5
            "sublinear_tf": True,
            "temperature": 3.0,  # softmax scale over margins -> confidences
            "ranking_length": 10,
            # names (or aliases) of the featurizers whose features to use; empty = all of them
            "featurizers": [],
            # dense sentence features (embeddings) are scaled by this before they join the TF-IDF
            # blocks (each of L2 norm 1): the embedding's share of the SVM's attention
            "dense_weight": 1.0,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        fitted: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._fitted = fitted  # {"origins": [...], "widths": [...], "tfidf": [...], "clf": LinearSVC}
        self._scorer: Optional[LinearScorer] = None  # built from _fitted on the first parse

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "TfidfLinearIntentClassifier":
        return cls(config, model_storage, resource)

    def _blocks(self, message: Message) -> Dict[str, Tuple[Any, bool]]:
        """Sentence-level features of the text, one (features, is_dense) per featurizer, as Rasa gave them."""
        wanted = set(self.config["featurizers"] or [])
        blocks: Dict[str, Tuple[Any, bool]] = {}
        for feat in message.features:
            if feat.attribute == TEXT and feat.type == FEATURE_TYPE_SENTENCE:
                origin = feat.origin if isinstance(feat.origin, str) else "+".join(feat.origin)
                if not wanted or origin in wanted:
                    blocks[origin] = (feat.features, feat.is_dense())
        return blocks

    def _matrix(self, messages: List[Message], fit: bool) -> scipy.sparse.csr_matrix:
        per_message = [self._blocks(m) for m in messages]
        if fit:
            origins = sorted({o for b in per_message for o in b})
            widths = [max(b[o][0].shape[1] for b in per_message if o in b) for o in origins]
            dense = [any(b[o][1] for b in per_message if o in b) for o in origins]
            self._fitted = {"origins": origins, "widths": widths, "dense": dense, "tfidf": []}
        assert self._fitted is not None
        columns = []
        dense_flags = _dense_flags(self._fitted)
        for i, (origin, width) in enumerate(zip(self._fitted["origins"], self._fitted["widths"])):
            empty = (scipy.sparse.csr_matrix((1, width)), False)
            block = scipy.sparse.vstack(
                [scipy.sparse.csr_matrix(b.get(origin, empty)[0]) for b in per_message]
            ).tocsr()
            if dense_flags[i]:  # already L2-normalised sentence embeddings: no TF-IDF
                if fit:
                    self._fitted["tfidf"].append(None)
                columns.append(block * float(self.config["dense_weight"]))
                continue
            if fit:
                tfidf = TfidfTransformer(sublinear_tf=self.config["sublinear_tf"])
                self._fitted["tfidf"].append(tfidf.fit(block))
            columns.append(self._fitted["tfidf"][i].transform(block))
        return scipy.sparse.hstack(columns).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        if not examples:
            logger.warning(f"{self.__class__.__name__}: no intent examples; nothing trained.")
            return self._resource
        X = self._matrix(examples, fit=True)
        y = [e.get(INTENT) for e in examples]
        clf = LinearSVC(C=self.config["C"], class_weight="balanced", max_iter=5000, random_state=42)
        clf.fit(X, y)
        self._fitted["clf"] = clf
        with self._model_storage.write_to(self._resource) as model_dir:
            (model_dir / _MODEL_FILE).write_bytes(pickle.dumps(self._fitted))
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "TfidfLinearIntentClassifier":
        try:
            with model_storage.read_from(resource) as model_dir:
                fitted = pickle.loads((model_dir / _MODEL_FILE).read_bytes())
        except (ValueError, FileNotFoundError):
            logger.warning(f"{cls.__name__}: no trained model in the archive; predicting nothing.")
            fitted = None
        return cls(config, model_storage, resource, fitted)

    def process(self, messages: List[Message]) -> List[Message]:
        if not self._fitted or "clf" not in self._fitted:
            return messages
        clf = self._fitted["clf"]
        if self._scorer is None:
            self._scorer = LinearScorer(self._fitted, dense_weight=float(self.config["dense_weight"]))
        margins = np.vstack([self._scorer.margins(self._blocks(m)) for m in messages])
        scaled = margins * self.config["temperature"]
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for message, row in zip(messages, probs):
            ranking = sorted(
                ({"name": str(name), "confidence": float(p)} for name, p in zip(clf.classes_, row)),
                key=lambda r: -r["confidence"],
            )
            message.set(INTENT, ranking[0], add_to_output=True)
            length = self.config["ranking_length"]
            message.set("intent_ranking", ranking[:length] if length > 0 else ranking, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


class LinearScorer:
    """The fitted SVM's margins for one message, computed straight from its feature arrays.

    Why not ``clf.decision_function(self._matrix(...))``: for a single message, building and validating
    the sparse matrices (vstack, hstack, TfidfTransformer and sklearn input checks) cost about 3 ms, a
    fifth of a whole parse, for arithmetic that takes microseconds.  This does the same arithmetic as
    TfidfTransformer.transform (sublinear tf, idf, the row norm) and the SVM's dot product, and gives
    the same margins (tests/test_nlu_classifier.py checks it against the sklearn path).
    """

    def __init__(self, fitted: Dict[str, Any], dense_weight: float) -> None:
        clf = fitted["clf"]
        self._weights = np.ascontiguousarray(np.asarray(clf.coef_, dtype=np.float64).T)  # a row per feature
        self._intercept = np.asarray(clf.intercept_, dtype=np.float64)
        self._dense_weight = dense_weight
        self._blocks: List[Tuple[str, int, int, bool, Optional[_Tfidf]]] = []
        offset = 0
        blocks = zip(fitted["origins"], fitted["widths"], fitted["tfidf"], _dense_flags(fitted))
        for origin, width, tfidf, dense in blocks:
            settings = _Tfidf.of(tfidf) if tfidf is not None else None
            self._blocks.append((origin, offset, width, bool(dense), settings))
            offset += width
        if offset != self._weights.shape[0]:
            raise ValueError(f"the fitted blocks are {offset} features wide but the SVM has "
                             f"{self._weights.shape[0]}: retrain the model (frontdesk nlu train)")

    def margins(self, blocks: Dict[str, Tuple[Any, bool]]) -> np.ndarray:
        """One margin per class for one message's blocks ({origin: (features, is_dense)})."""
        scores = self._intercept.copy()
        for origin, offset, width, dense, tfidf in self._blocks:
            found = blocks.get(origin)
            if found is None:
                continue  # an absent block is all zeros: it adds nothing
            features = found[0]
            if dense:
                if scipy.sparse.issparse(features):
                    features = features.toarray()
                vector = np.asarray(features).ravel()[:width] * self._dense_weight
                scores += _weighted_sum(vector, self._weights[offset:offset + vector.size])
                continue
            row = scipy.sparse.csr_matrix(features)  # sums duplicate entries, as the sklearn path does
            keep = (row.data != 0) & (row.indices < width)
            columns, values = row.indices[keep], row.data[keep].astype(np.float64)
            if tfidf is not None:
                values = _tfidf_row(tfidf, columns, values)
            scores += _weighted_sum(values, self._weights[offset + columns])
        return scores


def _dense_flags(fitted: Dict[str, Any]) -> List[bool]:
    """Which fitted blocks are dense embeddings (models trained before the flag existed have none)."""
    return fitted.get("dense") or [False] * len(fitted["origins"])


def _weighted_sum(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values @ rows without BLAS: numpy would hand this tiny product to OpenBLAS, whose second thread
    then spins for every parse (twice the CPU for the same latency on a 2-core machine)."""
    return np.einsum("i,ij->j", values, rows)


class _Tfidf(NamedTuple):
    """A fitted TfidfTransformer's settings, read once: its ``idf_`` is a property that sums a sparse
    diagonal matrix on every access (0.3 ms per block per message)."""

    sublinear_tf: bool
    idf: Optional[np.ndarray]
    norm: Optional[str]

    @classmethod
    def of(cls, tfidf: TfidfTransformer) -> "_Tfidf":
        idf = np.asarray(tfidf.idf_, dtype=np.float64) if tfidf.use_idf else None
        return cls(bool(tfidf.sublinear_tf), idf, tfidf.norm)


def _tfidf_row(tfidf: _Tfidf, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """TfidfTransformer.transform for one row's non-zero (column, value) pairs."""
    if tfidf.sublinear_tf:
        values = np.log(values) + 1.0
    if tfidf.idf is not None:
        values = values * tfidf.idf[columns]
    if tfidf.norm == "l2":
        norm = float(np.sqrt(values @ values))
    elif tfidf.norm == "l1":
        norm = float(np.abs(values).sum())
    else:
        norm = 0.0
    return values / norm if norm > 0 else values
