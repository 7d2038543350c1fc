"""Issue 18: what the bot does, classed right / safe / harmful, and the router rules the measure led to.

Router cases run on the shipped content and taxonomy (no server); `frontdesk eval decisions` runs with the
session's real Rasa.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import ContentError, check_faq_intents, load_content
from bot.decisions import HARMFUL, RIGHT, SAFE, classify, kind_for
from bot.router import Decision, Escalate, Register, Reply, RouterConfig, UpdateState, route
from tests.fixtures.bot import CONTENT_DIR, incoming, taxonomy

ROOT = Path(__file__).resolve().parent.parent


def _replies(decision: Decision) -> list[str]:
    return [r.text for r in decision.of(Reply)]


def _state(decision: Decision) -> dict:
    state: dict = {}
    for update in decision.of(UpdateState):
        state.update(update.changes)
    return {k: v for k, v in state.items() if v is not None}


# --- events: register only when the words identify one event ------------------------------------------------


def test_sign_up_for_the_launch_webinar_on_the_15th_asks_first(content, router_config) -> None:
    text = "Can I sign up for the product launch webinar on the 15th?"
    decision = route(incoming(text, "event_registration", 1.0), content, router_config)
    assert decision.of(Register) == []
    [question] = _replies(decision)
    assert "18 February" in question and "register you for that one" in question
    # "yes" registers for the one the bot named; nothing was registered before it.
    after = route(incoming("yes please", "affirm_or_whatever", 0.4, state=_state(decision), message_id=2),
                  content, router_config)
    [registered] = after.of(Register)
    assert registered.event.key == "launch-livestream-2027-02"


def test_no_to_the_confirmation_offers_the_other_events(content, router_config) -> None:
    first = route(incoming("register me for the launch on the 15th", "event_registration", 1.0), content,
                  router_config)
    after = route(incoming("no", "out_of_scope", 0.9, state=_state(first), message_id=2), content, router_config)
    assert after.of(Register) == []
    assert "Which event" in _replies(after)[0] and "Spring product launch" not in _replies(after)[0]


@pytest.mark.parametrize("text", [
    "please register me for the getting started webinar",
    "sign me up for the automation workshop on 10 December",
    "register me for the launch livestream on the 18th of February",
])
def test_words_that_identify_one_event_register_at_once(content, router_config, text: str) -> None:
    decision = route(incoming(text, "event_registration", 0.97), content, router_config)
    assert len(decision.of(Register)) == 1, decision


def test_a_place_that_disagrees_asks_first(content, router_config) -> None:
    decision = route(incoming("register me for the meetup in Munich", "event_registration", 0.97), content,
                     router_config)
    assert decision.of(Register) == []
    assert "Frontdesk user meetup Berlin" in _replies(decision)[0]


def test_opening_hours_are_answered_from_the_faq_not_the_events_list(content, router_config) -> None:
    # What the shipped model answers for it: event_info (0.68).
    [answer] = _replies(route(incoming("what are your opening hours", "event_info", 0.95), content, router_config))
    assert "Monday to Friday" in answer
    assert "coming up" not in answer and "webinar" not in answer.lower()


def test_an_event_the_catalogue_does_not_know_goes_to_the_events_team(content, router_config) -> None:
    decision = route(incoming("is there parking at the arena for the concert", "event_info", 1.0), content,
                     router_config)
    [ticket] = decision.of(Escalate)
    assert ticket.queue == "events"


# --- FAQ for any category, checked against the taxonomy -------------------------------------------------------


def test_every_shipped_faq_intent_is_in_the_taxonomy() -> None:
    check_faq_intents(load_content(CONTENT_DIR), taxonomy().intents)


def test_a_misspelt_faq_intent_fails_with_file_and_line(tmp_path: Path) -> None:
    for name in ("events.yml", "replies.yml", "words.yml"):
        (tmp_path / name).write_text((CONTENT_DIR / name).read_text(encoding="utf-8"))
    (tmp_path / "faq.yml").write_text(
        "faq:\n"
        "  - key: hours\n"
        "    intents: [event_info]\n"
        "    keywords: [opening hours]\n"
        "    answer: Mon-Fri 9-5.\n"
        "  - key: prices\n"
        "    intents: [pricng]\n"
        "    keywords: [price]\n"
        "    answer: See the website.\n",
        encoding="utf-8",
    )
    with pytest.raises(ContentError) as caught:
        check_faq_intents(load_content(tmp_path), taxonomy().intents)
    message = str(caught.value)
    assert f"{tmp_path / 'faq.yml'}:6:" in message
    assert "'pricng'" in message and "did you mean 'pricing'" in message


# --- when unsure -----------------------------------------------------------------------------------------------


def test_unsure_but_asking_for_a_person_gets_a_ticket_not_a_question(content) -> None:
    config = RouterConfig(confidence_threshold=0.9, taxonomy=taxonomy())
    decision = route(incoming("how do i get through to a person on your helpline?", "how_to", 0.6), content, config)
    [ticket] = decision.of(Escalate)
    assert ticket.category == "human"


def test_thanks_around_a_problem_is_a_support_ticket(content, router_config) -> None:
    decision = route(incoming("thanks for the update but my problem still isn't fixed", "thanks", 1.0), content,
                     router_config)
    [ticket] = decision.of(Escalate)
    assert ticket.queue == "support"
    assert decision.of(Reply) == []


# --- the classes ------------------------------------------------------------------------------------------------


def _classed(truth: str, text: str, intent: str, confidence: float = 0.99, **kw) -> tuple[str, str]:
    config = RouterConfig(confidence_threshold=0.9, taxonomy=taxonomy())
    decision = route(incoming(text, intent, confidence, **kw), load_content(CONTENT_DIR), config)
    classed = classify(truth, decision, config.taxonomy)
    return classed.verdict, classed.action


def test_classes_follow_the_issue() -> None:
    assert _classed("support", "where is my package, track it", "order_problem") == (RIGHT, "answer:support")
    assert _classed("support", "my parcel is lost", "event_info")[0] == HARMFUL  # an event reply to a problem
    assert _classed("support", "my parcel is lost", "greet")[0] == HARMFUL
    assert _classed("support", "my parcel is lost", "pricing") == (HARMFUL, "ticket:sales")
    assert _classed("support", "mumble", "order_problem", 0.3) == (SAFE, "ask")
    assert _classed("human", "mumble", "order_problem", 0.3) == (HARMFUL, "ask")  # a person asked, none came
    assert _classed("human", "let me talk to a person", "ask_human") == (RIGHT, "ticket:general")
    assert _classed("other", "mumble", "out_of_scope") == (RIGHT, "ask")
    assert _classed("smalltalk", "hi there", "greet") == (RIGHT, "answer:smalltalk")
    assert _classed("sales", "how much is the pro plan", "pricing") == (RIGHT, "ticket:sales")
    assert _classed("sales", "how much is the pro plan", "ask_human") == (SAFE, "ticket:general")
    assert _classed("event", "register me for the getting started webinar", "event_registration")[0] == RIGHT


def test_a_tagged_handle_is_a_public_mention() -> None:
    assert kind_for("@Brand where is my order") == "public"
    assert kind_for("where is my order, mail me at a@b.example") == "dm"
    assert kind_for("@Brand hi", "telegram") == "telegram"


# --- the command, with the real NLU ----------------------------------------------------------------------------


@pytest.mark.rasa
async def test_eval_decisions_prints_rates_and_pairs_never_rows(nlu_server_url: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "few.csv"
    csv_path.write_text(
        "text,category\n"
        "where is my package? I want to track it,support\n"
        "how much does the pro plan cost,sales\n"
        "let me talk to a real person please,human\n"
        "unmistakable-row-marker what are your opening hours,other\n",
        encoding="utf-8",
    )
    env = {**os.environ, "FRONTDESK_NLU_URL": nlu_server_url}
    command = [sys.executable, "-m", "frontdesk", "eval", "decisions", str(csv_path)]
    table = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert table.returncode == 0, table.stderr
    assert "4 messages" in table.stdout and "right" in table.stdout and "harmful" in table.stdout
    assert "unmistakable-row-marker" not in table.stdout + table.stderr
    as_json = subprocess.run(command + ["--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    report = json.loads(as_json.stdout)
    assert report["messages"] == 4
    assert abs(report["right"] + report["safe"] + report["harmful"] - 1) < 1e-6
    assert report["per_category"]["sales"]["right"] == 1  # a pricing question: the sales ticket at once


def test_eval_decisions_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("message,label\nhello,other\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "frontdesk", "eval", "decisions", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1
    assert "missing column" in done.stderr and "text,category" in done.stderr


def test_twice_unsure_of_a_sales_question_ends_in_sales_not_general(content) -> None:
    config = RouterConfig(confidence_threshold=0.9, taxonomy=taxonomy())
    first = route(incoming("what would it run us per seat", "pricing", 0.6), content, config)
    assert first.of(Escalate) == [] and len(first.of(Reply)) == 1
    second = route(incoming("the cost, for 30 seats", "purchase", 0.7, state=_state(first), message_id=2),
                   content, config)
    [ticket] = second.of(Escalate)
    assert ticket.queue == "sales"
    # Unsure twice of different things: the general queue, as before.
    other = route(incoming("hmm the thing", "event_info", 0.5, state=_state(first), message_id=2), content, config)
    assert other.of(Escalate)[0].queue == "general"


# --- bot/event_match.py ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, mismatch", [
    ("register me for the launch on 18 February", ""),
    ("register me for the launch on February 18th", ""),
    ("register me for the launch on Thursday", ""),
    ("register me for the launch on the 15th", "date"),
    ("register me for the launch in March", "date"),
    ("register me for the launch on Friday", "date"),
    ("may I register for the launch?", ""),  # "may" is not the month
    ("register me for the product launch webinar", "name"),  # and the webinar a second candidate
])
def test_what_disagrees_with_the_launch(content, text: str, mismatch: str) -> None:
    from bot.event_match import identify
    from tests.fixtures.bot import NOW

    found = identify(content.events, text, now=NOW)
    assert found.best is not None and found.best.key == "launch-livestream-2027-02"
    assert found.mismatch == mismatch
