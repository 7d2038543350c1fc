"""What the NLU model reads of a tweet: the rules of nlu/project/addons/tweet_text.py.

The same rules run inside Rasa (TweetNormalizer tokenizer) at training and at parse time; here
they are checked without Rasa, loading the module from the Rasa project by path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "nlu" / "project" / "addons" / "tweet_text.py"


@pytest.fixture(scope="module")
def normalize():
    spec = importlib.util.spec_from_file_location("frontdesk_tweet_text", _PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    norm = module.Normalizer()
    return lambda text: " ".join(t for t, _, _ in norm(text))


def test_addressee_handles_are_dropped_and_links_become_a_placeholder(normalize) -> None:
    assert normalize("@Brand hi https://t.co/abc") == "hi __url__"
    assert normalize("@Brand @OtherBrand: my order is late") == "my order is late"


def test_handles_inside_the_text_become_a_placeholder(normalize) -> None:
    assert normalize("@Brand ask @someone_else about it") == "ask __user__ about it"


def test_hashtags_become_words_but_order_numbers_stay_whole(normalize) -> None:
    assert normalize("#CustomerServiceFail again") == "customer service fail again"
    assert normalize("order #A1234 missing") == "order a1234 missing"


def test_html_entities_elongations_and_emoji(normalize) -> None:
    assert normalize("soooo slow &amp; broken 😡😡") == "soo slow broken __emo_angry__"
    assert normalize("love it &lt;3") == "love it __emo_love__"
    assert normalize("thanks :)") == "thanks __emo_pos__"


def test_emails_and_question_marks(normalize) -> None:
    assert normalize("mail me at jo.smith@example.com?") == "mail me at __email__ __qmark__"


def test_spans_point_into_the_original_text() -> None:
    spec = importlib.util.spec_from_file_location("frontdesk_tweet_text_spans", _PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "@Brand order #A48213 never came 😭"
    tokens = module.Normalizer()(text)
    assert [text[s:e] for _, s, e in tokens] == ["order", "#A48213", "never", "came", "😭"]
