"""FastCRFEntityExtractor (nlu/project/addons/fast_crf.py) against Rasa's CRFEntityExtractor.

The subclass is only allowed because it changes nothing: both extractors are trained on the real
training data (tokenised and regex-featurised as in config.yml) in the real Rasa venv; then every
training example and a few unseen messages must get the same token features (keys, values and order)
and the same entities, confidences included (only the ``extractor`` name differs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.nlu import COMPONENT_SCRIPT_PRELUDE, run_in_rasa_venv

_SCRIPT = COMPONENT_SCRIPT_PRELUDE + r"""
from rasa.nlu.extractors.crf_entity_extractor import CRFEntityExtractor
from rasa.nlu.featurizers.sparse_featurizer.regex_featurizer import RegexFeaturizer
from addons.fast_crf import FastCRFEntityExtractor

import yaml
pipeline = yaml.safe_load(open("config.yml", encoding="utf-8"))["pipeline"]
regex_options = next(c for c in pipeline if c["name"] == "RegexFeaturizer")
regex_config = {**RegexFeaturizer.get_default_config(), **regex_options}
del regex_config["name"]
regexes = RegexFeaturizer.create(regex_config, storage, Resource("regex"), context)
regexes.train(data)
regexes.process_training_data(data)
extractors = []
for cls in (CRFEntityExtractor, FastCRFEntityExtractor):
    extractor = cls.create(cls.get_default_config(), storage, Resource(cls.__name__), context)
    extractor.train(data)
    extractors.append(extractor)
unseen = ["@Brand order #A12345 never came, email me at jo@example.com",
          "is the London Summit on 12/03 streamed? asking for the Pixel 7 launch",
          "@Brand hi", "🙃🙃🙃", "ORDER 99812 WHERE IS IT"]
texts = [m.get("text") for m in data.training_examples] + unseen
feature_differ = entity_differ = entities = 0
config = extractors[0].component_config
for text in texts:
    parsed = []
    for extractor in extractors:
        message = Message(data={"text": text})
        tokenizer.process([message])
        regexes.process([message])
        tokens = extractor._convert_to_crf_tokens(message)
        features = [[list(f.items()) for f in type(extractor)._crf_tokens_to_features(tokens, config, tags)]
                    for tags in (False, True)]
        extractor.process([message])
        # the same entities apart from the extractor's name, which each class reports as its own
        found = [{k: v for k, v in e.items() if k != "extractor"} for e in message.get("entities", [])]
        parsed.append((features, found))
    feature_differ += parsed[0][0] != parsed[1][0]
    entity_differ += parsed[0][1] != parsed[1][1]
    entities += len(parsed[0][1])
print(json.dumps({"messages": len(texts), "feature_differ": feature_differ,
                  "entity_differ": entity_differ, "entities": entities}))
"""


@pytest.fixture(scope="module")
def report(rasa_venv: Path) -> dict:
    return run_in_rasa_venv(rasa_venv, _SCRIPT, timeout_s=600)


def test_token_features_equal_rasas_on_every_training_example(report: dict) -> None:
    assert report["messages"] > 3000
    assert report["feature_differ"] == 0


def test_entities_and_confidences_equal_rasas(report: dict) -> None:
    assert report["entities"] > 100  # the comparison covers messages that do have entities
    assert report["entity_differ"] == 0
