"""SentenceCountVectorsFeaturizer (nlu/project/addons/sentence_counts.py) against Rasa's own featurizer.

The shortcut is only allowed because it changes nothing the classifier sees: both featurizers are
trained on the real training data in the real Rasa venv, then every training example (and a few
messages the vocabulary has never seen) must get the same sentence features from both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nlu import COMPONENT_SCRIPT_PRELUDE, run_in_rasa_venv

_SCRIPT = COMPONENT_SCRIPT_PRELUDE + r"""
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from addons.sentence_counts import SentenceCountVectorsFeaturizer

unseen = ["@Brand hi https://t.co/x 😡", "zzyzx qwertyuiop", "ORDER #A1234 never came!!", ""]
report = {}
for name, options in {"words": {}, "chars": {"analyzer": "char_wb", "min_ngram": 2, "max_ngram": 5}}.items():
    featurized = []
    for cls in (CountVectorsFeaturizer, SentenceCountVectorsFeaturizer):
        config = {**cls.get_default_config(), **options}
        component = cls.create(config, storage, Resource(cls.__name__ + name), context)
        component.train(data)
        messages = [Message(data={"text": m.get("text")}) for m in data.training_examples]
        messages += [Message(data={"text": text}) for text in unseen]
        tokenizer.process(messages)
        component.process(messages)
        featurized.append(messages)
    differ, sequence = 0, 0
    for theirs, ours in zip(*featurized):
        a = [f.features for f in theirs.features if f.type == "sentence"]
        b = [f.features for f in ours.features if f.type == "sentence"]
        sequence += sum(f.type == "sequence" for f in ours.features)
        same = len(a) == len(b) and all(
            x.shape == y.shape and x.dtype == y.dtype and (x != y).nnz == 0 for x, y in zip(a, b))
        differ += not same
    report[name] = {"messages": len(featurized[0]), "differ": differ, "our_sequence_features": sequence}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(rasa_venv: Path) -> dict:
    return run_in_rasa_venv(rasa_venv, _SCRIPT, timeout_s=600)


@pytest.mark.parametrize("featurizer", ["words", "chars"])
def test_sentence_features_equal_rasas_on_every_training_example(report: dict, featurizer: str) -> None:
    assert report[featurizer]["messages"] > 3000
    assert report[featurizer]["differ"] == 0


def test_no_sequence_features_are_computed(report: dict) -> None:
    assert report["words"]["our_sequence_features"] == 0 and report["chars"]["our_sequence_features"] == 0
