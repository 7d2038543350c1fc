"""The brand's words are content: replies.yml and words.yml checked like the FAQ, `frontdesk content check`,
public replies distinct per customer, and reloading a changed folder (file change, SIGHUP) while running."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import replies
from bot.content import Content
from bot.content_store import ContentStore
from bot.router import route
from bot.texts import PUBLIC_KEYS, x_weighted_length
from frontdesk.app.cli import app
from frontdesk.app.supervisor import install_reload_signal
from tests.fixtures.bot import BRAND_ID, CONTENT_DIR, incoming, taxonomy

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the shipped content to break."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target, ignore=shutil.ignore_patterns("kustomization.yaml"))
    return target


def _check(folder: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["content", "check", str(folder)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --- checking ---------------------------------------------------------------------------------------------------


def test_the_shipped_content_passes_the_check_with_a_summary() -> None:
    code, output = _check(CONTENT_DIR)
    assert code == 0, output
    assert "content OK" in output and "30 public replies" in output and "24 intents" in output


@pytest.mark.parametrize(
    ("old", "new", "needle", "problem"),
    [
        ('escalated_human: "Of course', 'escalated_human: "Hi {name}, of course', "escalated_human:",
         r"unknown placeholder \{name\}; `dm.escalated_human` can use \{hours\}"),
        ("    - \"Any time, {handle}!\"", "    - \"Any time!\"", "Any time!",
         r"every public wording must contain \{handle\}"),
        ("    - \"Take care, {handle}!\"",
         "    - \"Take care, {handle}! " + "We really mean it. " * 14 + "\"", "Take care",
         r"`public.smalltalk_goodbye` can be \d+ characters long .* must fit 280"),
        ("  smalltalk_thanks: \"You're", "  smalltalk_thanx: \"You're", "smalltalk_thanx",
         r"unknown key `dm.smalltalk_thanx`"),
        ("  list_and: \"and\"\n", "  list_and: \"and {\"\n", "list_and",
         r"`parts.list_and`: .*write a literal brace as \{\{"),
    ],
    ids=["unknown placeholder", "public without handle", "public can exceed 280", "typo in a key", "lone brace"],
)
def test_a_mistake_in_replies_yml_names_the_file_and_line(
    folder: Path, old: str, new: str, needle: str, problem: str
) -> None:
    path = folder / "replies.yml"
    _edit(path, old, new)
    code, output = _check(folder)
    assert code == 1
    assert f"{path}:{_line_of(path, needle)}:" in output, output
    assert re.search(problem, output), output


def test_a_public_reply_needs_two_wordings_and_every_key(folder: Path) -> None:
    path = folder / "replies.yml"
    _edit(path, '    - "Hello {handle}! What can we do for you? Order or account questions are best in a DM: '
                '{dm_link}"\n', "")
    code, output = _check(folder)
    greet = _line_of(path, "Hi {handle}! How can we help?")
    assert code == 1 and f"{path}:{greet}:" in output, output
    assert "has 1 wording(s); give at least 2" in output
    shutil.copy(CONTENT_DIR / "replies.yml", path)
    _edit(path, '  event_full: "Sorry', '  # event_full: "Sorry')
    code, output = _check(folder)
    assert code == 1 and "`dm.event_full` is missing" in output


def test_an_event_name_too_long_for_a_public_reply_is_caught_by_the_events_it_would_appear_in(folder: Path) -> None:
    """The 280 check measures public event replies with the catalogue's own names and links."""
    _edit(folder / "events.yml", 'name: "Frontdesk user meetup Berlin"', 'name: "' + "Meetup " * 30 + '"')
    code, output = _check(folder)
    assert code == 1 and "characters long (with the event 'Meetup Meetup" in output, output


def test_a_mistake_in_words_yml_names_the_file_and_line(folder: Path) -> None:
    path = folder / "words.yml"
    _edit(path, 'alone: ["no", nope, nah]', "alone: [no, nope, nah]")  # YAML reads a bare no as false
    code, output = _check(folder)
    assert code == 1
    assert f"{path}:{_line_of(path, 'alone: [no')}:" in output and "quote words YAML reads otherwise" in output


def test_a_mistake_in_the_taxonomy_fails_the_check(folder: Path) -> None:
    _edit(folder / "taxonomy.yml", "order_problem:        {category: support,   queue: support",
          "order_problem:        {category: support,   queue: supprt")
    code, output = _check(folder)
    assert code == 1 and "order_problem" in output and "queue is 'supprt'" in output


def test_an_faq_intent_the_taxonomy_does_not_know_fails_the_check(folder: Path) -> None:
    """The FAQ is checked against the taxonomy by the check (as at start-up and on a reload)."""
    path = folder / "faq.yml"
    text = path.read_text(encoding="utf-8")
    assert "pricing" in text
    _edit(path, "[pricing", "[pricng")
    code, output = _check(folder)
    assert code == 1, output
    assert re.search(rf"{re.escape(str(path))}:\d+: FAQ entry '[^']+': intent 'pricng' is not in the taxonomy",
                     output), output
    assert "did you mean 'pricing'" in output


# --- what the bot says comes from the files ------------------------------------------------------------------


def test_the_router_says_what_replies_yml_says_and_decides_by_words_yml(folder: Path) -> None:
    from bot.content import load_content
    from bot.router import RouterConfig

    _edit(folder / "replies.yml", "Of course: I've asked a person to take over.", "Right away: a colleague takes over.")
    _edit(folder / "words.yml", "phrases: [register,", "phrases: [count me in, register,")
    _edit(folder / "words.yml", "lawyer]", "lawyer, grr]")
    content = load_content(folder)
    config = RouterConfig(brand_user_id=BRAND_ID, taxonomy=taxonomy())
    human = route(incoming("get me a human", "ask_human", 0.95), content, config)
    assert human.effects[0].notice.startswith("Right away: a colleague takes over.")
    angry = route(incoming("grr where is my parcel", "order_problem"), content, config)
    assert angry.effects[0].priority == "high"  # "grr" is anger only in this brand's words
    text = "count me in for the meetup"
    joined = route(incoming(text, "event_info"), content, config)
    assert "register" in joined.rule, joined.rule
    assert "register" not in route(incoming(text, "event_info"), Content(events=content.events), config).rule


def test_a_problem_named_among_thanks_is_the_brands_words(folder: Path) -> None:
    """Thanks around a problem goes to support, not a cheerful reply; which words say so is words.yml's."""
    from bot.content import load_content
    from bot.router import RouterConfig

    config = RouterConfig(brand_user_id=BRAND_ID, taxonomy=taxonomy())
    text = "thanks for the quick reply, gutted about the parcel though"
    shipped = route(incoming(text, "thanks"), load_content(folder), config)
    assert shipped.rule.startswith("smalltalk"), shipped.rule
    _edit(folder / "words.yml", "phrases: [never again,", "phrases: [gutted, never again,")
    edited = route(incoming(text, "thanks"), load_content(folder), config)
    assert not edited.rule.startswith("smalltalk") and "support" in edited.rule, edited.rule
    assert route(incoming("thanks but it still isn't fixed", "thanks"), load_content(folder), config).rule != shipped.rule


def test_the_lead_question_the_confirmation_and_their_words_come_from_the_files(folder: Path) -> None:
    """The sales ticket's question, the "added" note, the event confirmation and the words deciding them
    (a person, yes/no, words about events) are the brand's, not Python's."""
    from bot.content import load_content
    from bot.router import QueueNotice, Reply, RouterConfig, UpdateState

    replies_path, words_path = folder / "replies.yml", folder / "words.yml"
    _edit(replies_path, "Our sales team already has your message", "Sales has it already")
    _edit(replies_path, "Thanks, I've added that for our sales team", "Noted for Sales")
    _edit(replies_path, 'confirm_event: "{event} is on {date} — shall I',
          'confirm_event: "Do you mean {event} ({date})? Shall I')
    _edit(words_path, '"no": ["no", nope,', '"no": ["no", nein, nope,')
    _edit(words_path, '"yes": ["yes", yeah,', '"yes": ["yes", jawohl, yeah,')
    _edit(words_path, "phrases: [a person,", "phrases: [my bank manager's cousin, a person,")
    _edit(words_path, "phrases: [event, events,", "phrases: [happenings, event, events,")
    content = load_content(folder)
    config = RouterConfig(brand_user_id=BRAND_ID, taxonomy=taxonomy())

    def state(decision) -> dict:  # noqa: ANN001
        found: dict = {}
        for update in decision.of(UpdateState):
            found.update(update.changes)
        return {k: v for k, v in found.items() if v is not None}

    sales = route(incoming("how much does the pro plan cost?", "pricing", 0.95), content, config)
    assert "Sales has it already" in sales.effects[0].notice
    noted = route(incoming("we're Northwind, 120 staff", "ask_human", 0.95, status="queued", state=state(sales),
                           message_id=2), content, config)
    assert noted.of(QueueNotice)[0].text.startswith("Noted for Sales;")

    ask = route(incoming("register me for the launch on the 15th", "event_registration", 1.0), content, config)
    [question] = [r.text for r in ask.of(Reply)]
    assert question.startswith("Do you mean Spring product launch") and "18 February" in question
    yes = route(incoming("jawohl", "out_of_scope", 0.4, state=state(ask), message_id=2), content, config)
    assert "register" in yes.rule, yes.rule
    no = route(incoming("nein danke", "out_of_scope", 0.4, state=state(ask), message_id=2), content, config)
    assert "ask which event" in no.rule, no.rule

    # Unsure, but in words that ask for a person (this brand's words only): a person, not "say it again".
    unsure = "could my bank manager's cousin sort this"
    assert "human" in route(incoming(unsure, "order_problem", 0.3), content, config).rule
    assert "human" not in route(incoming(unsure, "order_problem", 0.3), Content(faq=content.faq), config).rule
    # "happenings" is a word about events for this brand: the list of what is coming up.
    listed = route(incoming("any happenings soon?", "event_info", 0.95), content, config)
    assert "listed what is coming up" in listed.rule, listed.rule


def test_did_not_help_reads_plain_phrases_without_regular_expressions() -> None:
    words = Content().words
    assert words.did_not_help("that didnt help at all") and words.did_not_help("It DIDN’T help")
    assert words.did_not_help("nope!") and words.did_not_help(" no. ")
    assert not words.did_not_help("no idea, but thanks") and not words.did_not_help("that helped")
    assert words.asks_to_register("please sign me up") and not words.asks_to_register("I reserved a table")


def test_public_replies_are_distinct_per_customer_and_fit_a_post() -> None:
    seen: set[str] = set()
    for n in range(100):
        voice = replies.Voice(public=True, handle=f"customer_{n:03d}", seed=1000 + n, brand_user_id=BRAND_ID)
        text = replies.public_invite_dm(voice, complaint=True, next_opening="Monday 09:00 (Europe/Berlin)")
        assert f"customer_{n:03d}" in text and x_weighted_length(text) <= 280
        seen.add(text)
    assert len(seen) == 100
    # One customer writing twice: another message, most often another wording; never an empty name.
    voice = replies.Voice(public=True, handle="", seed=7, brand_user_id=BRAND_ID)
    for seed in range(3):
        text = replies.public_invite_dm(replies.Voice(public=True, seed=seed, brand_user_id=BRAND_ID), complaint=True)
        assert " ," not in text and "{" not in text and text[0].isupper(), text


def test_every_public_wording_can_be_reworded_into_the_others() -> None:
    """What the sender falls back to when X still says duplicate: the brand's other wordings, same values."""
    texts = Content().texts
    values = {"handle": "nadia_k", "dm_link": "https://x.com/messages/compose?recipient_id=1", "hours": "",
              "event": "Frontdesk user meetup Berlin", "date": "Thu 5 Mar, 18:00 CET",
              "registration_url": "https://example.com/events/meetup", "events_url": "https://example.com/events",
              "verb": "register you for", "choices": "1. A 2. B"}
    for key in PUBLIC_KEYS:
        wordings = texts.public_wordings(key, **values)
        for text in wordings:
            others = texts.alternatives(text)
            assert others and text not in others, (key, text)
            assert set(others) <= set(wordings), (key, others)
            assert "nadia_k" in others[0]
    assert texts.alternatives("a reply an agent wrote") == []


# --- reloading ---------------------------------------------------------------------------------------------------


async def test_a_changed_file_is_reloaded_and_an_invalid_one_refused_keeping_the_old(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ContentStore(folder, folder / "taxonomy.yml")
    used: list[str] = []
    store.subscribe(lambda bundle: used.append(bundle.content.texts.dm("smalltalk_goodbye")))
    assert store.reload_if_changed() is None  # nothing changed: nothing loaded
    watching = asyncio.create_task(store.watch(0.05))
    try:
        _edit(folder / "replies.yml", 'smalltalk_goodbye: "Bye for now', 'smalltalk_goodbye: "See you soon')
        for _ in range(100):
            if used:
                break
            await asyncio.sleep(0.05)
        assert used == ["See you soon, have a good day!"]
        assert store.current.content.texts.dm("smalltalk_goodbye") == "See you soon, have a good day!"

        caplog.set_level(logging.ERROR, logger="frontdesk.content")
        _edit(folder / "replies.yml", 'smalltalk_goodbye: "See you soon', 'smalltalk_goodbye: "{nope} See you')
        for _ in range(100):
            if store.refused:
                break
            await asyncio.sleep(0.05)
        assert store.refused == 1 and "unknown placeholder {nope}" in store.last_error
        assert "the previous content stays in use" in caplog.text and "replies.yml:" in caplog.text
        assert store.current.content.texts.dm("smalltalk_goodbye") == "See you soon, have a good day!"
        assert used == ["See you soon, have a good day!"]
    finally:
        watching.cancel()


async def test_sighup_reloads_the_content(folder: Path) -> None:
    store = ContentStore(folder, folder / "taxonomy.yml")
    remove = install_reload_signal(store)
    try:
        _edit(folder / "replies.yml", "You're welcome! Anything else", "My pleasure! Anything else")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if store.reloads:
                break
            await asyncio.sleep(0.02)
        assert store.current.content.texts.dm("smalltalk_thanks") == "My pleasure! Anything else I can do?"
    finally:
        remove()
