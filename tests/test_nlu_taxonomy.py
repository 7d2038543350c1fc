"""The NLU model's three lists of intents (training data, domain, taxonomy) must agree.

A mismatch means a message could be classified into an intent the router does not know (it
would silently route as `other`), or the taxonomy promises routing for an intent the model can
never predict.  Plain YAML parsing: no Rasa needed.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from bot.taxonomy import load_taxonomy
from frontdesk.core.vocabulary import CATEGORIES

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "nlu" / "project"
REQUIRED_INTENTS = {
    "order_problem", "account_login", "billing_refund", "outage", "how_to", "complaint", "pricing",
    "demo_quote", "availability", "partnership", "event_info", "event_registration",
    "event_cancellation", "livestream_recording", "ask_human", "greet", "thanks", "goodbye",
    "praise", "out_of_scope",
}


def _training_files() -> list[Path]:
    return sorted((PROJECT / "data").glob("*.yml"))


def _training_intents() -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in _training_files():
        for item in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" in item:
                examples = [line for line in item["examples"].splitlines() if line.strip().startswith("- ")]
                counts[item["intent"]] = counts.get(item["intent"], 0) + len(examples)
    return counts


def _domain() -> dict:
    return yaml.safe_load((PROJECT / "domain.yml").read_text(encoding="utf-8"))


def test_training_data_intents_match_taxonomy() -> None:
    trained = set(_training_intents())
    routed = set(load_taxonomy().intents)
    assert trained - routed == set(), "intents with training data but no route in content/taxonomy.yml"
    assert routed - trained == set(), "intents in content/taxonomy.yml with no training examples"


def test_domain_intents_match_taxonomy() -> None:
    assert set(_domain()["intents"]) == set(load_taxonomy().intents)


def test_every_annotated_entity_is_declared_in_the_domain() -> None:
    declared = set(_domain()["entities"])
    annotated: set[str] = set()
    for path in _training_files():
        annotated.update(re.findall(r"\]\((\w+)\)", path.read_text(encoding="utf-8")))
    assert annotated, "no entity annotations found in the training data"
    assert annotated <= declared, f"annotated but not in domain.yml: {sorted(annotated - declared)}"
    assert {"order_number", "product", "event_name", "date", "email"} <= declared


def test_required_intents_exist_and_complaints_are_high_priority() -> None:
    taxonomy = load_taxonomy()
    assert REQUIRED_INTENTS <= set(taxonomy.intents)
    assert taxonomy.route("complaint").priority == "high"
    assert taxonomy.route("ask_human").category == "human"
    assert taxonomy.route("nlu_fallback").category == "other"


def test_every_category_has_intents_with_enough_examples() -> None:
    taxonomy = load_taxonomy()
    counts = _training_intents()
    for category in CATEGORIES:
        intents = taxonomy.intents_in(category)
        assert intents, f"no intent routes to {category}"
        assert sum(counts[i] for i in intents) >= 50, f"too little training data for {category}"
    too_small = {i: n for i, n in counts.items() if n < 10}
    assert too_small == {}, "intents need at least 10 examples each"


def test_config_uses_the_tweet_normalizer_first() -> None:
    config = yaml.safe_load((PROJECT / "config.yml").read_text(encoding="utf-8"))
    assert config["language"] == "en"
    assert config["pipeline"][0]["name"] == "addons.tweet_normalizer.TweetNormalizer"
    assert (PROJECT / "addons" / "tweet_normalizer.py").is_file()


# the dev sets and the fewest rows each must keep
_DEV_SETS = {"dev_tweets.csv": 180, "dev_clean.csv": 60, "dev_addressed.csv": 240, "dev_round10.csv": 240}


@pytest.mark.parametrize(("name", "min_rows"), [("clean_messages.csv", 120), *_DEV_SETS.items()])
def test_held_out_sets_cover_all_categories_and_are_not_training_data(name: str, min_rows: int) -> None:
    """The clean set and the dev set only mean something while no row of theirs is trained on."""
    with (REPO / "nlu" / "eval" / name).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= min_rows
    assert {r["category"] for r in rows} == set(CATEGORIES)
    training_text = "\n".join(p.read_text(encoding="utf-8").lower() for p in _training_files())
    leaked = [r["text"] for r in rows if r["text"].lower() in training_text]
    assert leaked == [], f"held-out {name} rows must not appear in the training data"


def test_dev_sets_and_clean_set_do_not_share_rows() -> None:
    """Choosing settings on the dev sets must not also tune the clean set's score."""
    texts = {}
    for name in ("clean_messages.csv", *_DEV_SETS):
        with (REPO / "nlu" / "eval" / name).open(encoding="utf-8") as fh:
            texts[name] = {r["text"].strip().lower() for r in csv.DictReader(fh)}
    clean = texts.pop("clean_messages.csv")
    shared = {name: clean & dev for name, dev in texts.items() if clean & dev}
    assert shared == {}, "dev rows that are also clean-set rows: rewrite them"
