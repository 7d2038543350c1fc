"""The intent classifier's per-message scoring (nlu/project/addons/tfidf_classifier.py) in the real Rasa venv.

A parse scores one message with `LinearScorer`, straight from the feature arrays, instead of stacking
sparse matrices for scikit-learn.  It must route exactly as the scikit-learn path it replaced: the
margins of both are compared on real Rasa `Message`/`Features` objects, with a fitted TF-IDF and
LinearSVC, including a message with a block missing and the dense sentence-embedding block.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nlu import run_in_rasa_venv

_SCRIPT = r"""
import json
import numpy as np
import scipy.sparse
from sklearn.svm import LinearSVC
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from addons.tfidf_classifier import LinearScorer, TfidfLinearIntentClassifier

rng = np.random.default_rng(7)

def message(i, with_chars=True):
    m = Message(data={TEXT: f"message {i}"})
    words = scipy.sparse.coo_matrix(rng.poisson(0.3, size=(1, 40)).astype(float))
    m.add_features(Features(words, FEATURE_TYPE_SENTENCE, TEXT, "word_counts"))
    if with_chars:
        chars = scipy.sparse.coo_matrix(rng.poisson(0.8, size=(1, 120)).astype(float))
        m.add_features(Features(chars, FEATURE_TYPE_SENTENCE, TEXT, "char_counts"))
    dense = rng.normal(size=(1, 16))
    m.add_features(Features(dense / np.linalg.norm(dense), FEATURE_TYPE_SENTENCE, TEXT, "minilm"))
    return m

config = {**TfidfLinearIntentClassifier.get_default_config(), "dense_weight": 0.7}
classifier = TfidfLinearIntentClassifier(config, None, None)
train = [message(i) for i in range(90)]
X = classifier._matrix(train, fit=True)
labels = [f"intent_{i % 5}" for i in range(90)]
svm = LinearSVC(C=0.5, class_weight="balanced", max_iter=5000, random_state=1)
classifier._fitted["clf"] = svm.fit(X, labels)

test = [message(100 + i) for i in range(20)] + [message(200, with_chars=False)]
reference = classifier._fitted["clf"].decision_function(classifier._matrix(test, fit=False))
scorer = LinearScorer(classifier._fitted, dense_weight=0.7)
fast = np.vstack([scorer.margins(classifier._blocks(m)) for m in test])
print(json.dumps({
    "max_difference": float(np.abs(fast - reference).max()),
    "same_top_intent": bool((fast.argmax(axis=1) == reference.argmax(axis=1)).all()),
    "shape": list(fast.shape),
    "spread": float(reference.std()),
}))
"""


@pytest.fixture(scope="module")
def compared(rasa_venv: Path) -> dict:
    return run_in_rasa_venv(rasa_venv, _SCRIPT)


def test_per_message_scoring_gives_the_margins_of_the_sklearn_path(compared: dict) -> None:
    assert compared["shape"] == [21, 5]
    assert compared["spread"] > 0.1  # the margins differ from class to class, so the check means something
    assert compared["max_difference"] < 1e-9


def test_per_message_scoring_routes_every_message_the_same(compared: dict) -> None:
    assert compared["same_top_intent"]
