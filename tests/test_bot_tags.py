"""The bot's tag rules (content/tags.yml): checked like every content file, decided by the router, written
by the worker in the message's transaction (fake parser and real Rasa; SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.content import Content, load_content
from bot.router import Escalate, QueueNotice, Reply, RouterConfig, TagTicket, route
from bot.tags import load_tag_rules
from bot.worker import BotWorker
from frontdesk.app.cli import app
from nlu.client import Entity, ParseResult
from storage.actions import record_inbound
from storage.actions.tags import tags_of_in
from storage.db import Database
from storage.models import Ticket, TicketEvent
from tests.fixtures.bot import CONTENT_DIR, incoming, nlu_result
from tests.store_helpers import dm

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target, ignore=shutil.ignore_patterns("kustomization.yaml"))
    return target


def _check(folder: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["content", "check", str(folder)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


# --- the file -------------------------------------------------------------------------------------------------


def test_the_shipped_rules_pass_the_check_and_are_summarised() -> None:
    code, output = _check(CONTENT_DIR)
    assert code == 0, output
    assert "tags.yml      3 rules -> vip, order, angry" in output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules:\n  - tag: VIP Customers\n    handles: [a]\n", ":2: tag 'VIP Customers' must be 1-32 lower-case"),
        ("rules:\n  - tag: vip\n", ":2: the rule for 'vip' has no condition"),
        ("rules:\n  - tag: vip\n    handle: [a]\n", ":3: unknown key `handle` in a rule"),
        ("rules:\n  - tag: x\n    categories: [billing]\n", ":3: unknown category 'billing'"),
        ("rules:\n  - tag: x\n    angry: yes please\n", ":3: `angry` must be true or false"),
        ("rules:\n  - tag: x\n    entities: []\n", ":3: `entities` must be a non-empty list"),
        ("rules:\n  - tag: x\n    intents: [order_problm]\n", "intent 'order_problm' is not in the taxonomy; did you mean 'order_problem'"),
        ("rule:\n  - tag: x\n", ":1: unknown key `rule`"),
        ("rules: [tag: x\n", "not valid YAML"),
    ],
)
def test_a_mistake_in_tags_yml_names_the_file_and_line(folder: Path, text: str, problem: str) -> None:
    (folder / "tags.yml").write_text(text, encoding="utf-8")
    code, output = _check(folder)
    assert code == 1
    assert "tags.yml" in output and problem in output, output


def test_a_folder_without_tags_yml_has_no_tag_rules(folder: Path) -> None:
    (folder / "tags.yml").unlink()
    assert _check(folder)[0] == 0
    assert load_content(folder).tags.rules == ()


def test_handles_are_matched_without_at_and_case(folder: Path) -> None:
    (folder / "tags.yml").write_text("rules:\n  - tag: vip\n    handles: ['@Acme_CEO']\n", encoding="utf-8")
    rules = load_tag_rules(folder / "tags.yml")
    common = {"entities": [], "category": "support", "intent": "order_problem", "angry": False}
    assert rules.tags_for(handle="acme_ceo", **common) == ("vip",)
    assert rules.tags_for(handle="@ACME_ceo", **common) == ("vip",)
    assert rules.tags_for(handle="someone", **common) == ()


# --- the router -------------------------------------------------------------------------------------------------

ORDER = [Entity(entity="order_number", value="A48213", start=6, end=12)]


def _tags(decision) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return tuple(t for effect in decision.of(TagTicket) for t in effect.tags)


def test_an_escalation_with_an_order_number_and_angry_words_is_tagged(content: Content, router_config: RouterConfig) -> None:
    decision = route(
        incoming("order A48213 never came, this is unacceptable", "order_problem", 0.95, entities=ORDER),
        content, router_config,
    )
    assert decision.of(Escalate)
    assert _tags(decision) == ("order", "angry")


def test_a_vip_is_tagged_whatever_they_write_once_it_is_a_ticket(content: Content, router_config: RouterConfig) -> None:
    vip = replace(incoming("I want to talk to a person", "ask_human", 0.95), contact_handle="acme_ceo")
    assert _tags(route(vip, content, router_config)) == ("vip",)
    queued = replace(incoming("hello? anyone?", "greet", status="queued"), contact_handle="Acme_CEO")
    decision = route(queued, content, router_config)
    assert [type(e) for e in decision.effects] == [QueueNotice, TagTicket] and _tags(decision) == ("vip",)


def test_no_ticket_no_tags_and_a_strangers_words_tag_nothing(content: Content, router_config: RouterConfig) -> None:
    chat = replace(incoming("hello!!! great day", "greet", 0.95), contact_handle="acme_ceo")
    decision = route(chat, content, router_config)
    assert decision.of(Reply) and not decision.of(Escalate) and _tags(decision) == ()
    stranger = replace(
        incoming("order A48213 is a scam!!!", "complaint", 0.95, kind="public", entities=ORDER, status="queued"),
        from_third_party=True,
    )
    assert route(stranger, content, router_config).effects == []


def test_an_angry_sales_message_is_not_tagged_angry(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("your pricing is ridiculous, what does the team plan cost", "pricing", 0.95),
                     content, router_config)
    assert decision.of(Escalate) and "angry" not in _tags(decision)


# --- the worker, with a parser that finds order numbers --------------------------------------------------------


class OrderParser:
    """Stands in for the NLU: "package" is an order problem; a word starting with "QX-" an order number."""

    async def parse(self, text: str) -> ParseResult:
        found = [w.strip(".,!?") for w in text.split() if w.startswith("QX-")]
        entities = [Entity(entity="order_number", value=w, start=text.index(w), end=text.index(w) + len(w)) for w in found]
        intent = "order_problem" if "package" in text.lower() else "greet"
        return nlu_result(intent, 0.95, text, entities)


async def _ticket_tags(db: Database) -> dict[int, tuple[str, ...]]:
    async with db.session() as session:
        ids = (await session.execute(select(Ticket.id))).scalars().all()
        return await tags_of_in(session, ids)


async def _tag_events(db: Database) -> list[tuple[str, dict]]:
    async with db.session() as session:
        rows = await session.execute(
            select(TicketEvent.actor, TicketEvent.detail).where(TicketEvent.action == "tagged").order_by(TicketEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_the_worker_tags_the_ticket_it_opens_and_never_twice(
    db: Database, content: Content, router_config: RouterConfig
) -> None:
    worker = BotWorker(db, OrderParser(), content, router_config, owner="w1", idle_poll_s=0.05)
    await record_inbound(db, dm("my package QX-55120 never came. UNACCEPTABLE!!!", sender="811", handle="Acme_CEO"))
    await worker.drain()
    [(ticket_id, tags)] = (await _ticket_tags(db)).items()
    assert tags == ("angry", "order", "vip")
    # The customer writes again while the ticket waits: the rules hold again, nothing is written twice.
    await record_inbound(db, dm("still no package QX-55120!!!", sender="811", handle="Acme_CEO"))
    await worker.drain()
    assert await _ticket_tags(db) == {ticket_id: ("angry", "order", "vip")}
    assert await _tag_events(db) == [("bot", {"tag": "vip"}), ("bot", {"tag": "order"}), ("bot", {"tag": "angry"})]


async def test_a_plain_conversation_gets_no_tags(db: Database, content: Content, router_config: RouterConfig) -> None:
    worker = BotWorker(db, OrderParser(), content, router_config, owner="w1", idle_poll_s=0.05)
    await record_inbound(db, dm("hello there", sender="812", handle="acme_ceo"))
    await worker.drain()
    assert await _ticket_tags(db) == {} and await _tag_events(db) == []


# --- the real NLU -------------------------------------------------------------------------------------------------


@pytest.mark.rasa
async def test_an_order_number_the_real_model_finds_tags_the_ticket(
    db: Database, nlu_client, content: Content, router_config: RouterConfig  # type: ignore[no-untyped-def]
) -> None:
    text = "my order #A48213 arrived damaged, the box was crushed. I want a refund"
    parsed = await nlu_client.parse(text)
    assert "order_number" in {e.entity for e in parsed.entities}, parsed
    worker = BotWorker(db, nlu_client, content, router_config, owner="w1", idle_poll_s=0.05)
    await record_inbound(db, dm(text, sender="813"))
    await worker.drain()
    tags = await _ticket_tags(db)
    assert len(tags) == 1 and "order" in next(iter(tags.values())), tags


# --- the Telegram pager's card ------------------------------------------------------------------------------------


async def test_the_pager_card_shows_the_tickets_tags(db: Database, content: Content, router_config: RouterConfig) -> None:
    from bot.channels.telegram.pager_view import load_card, render

    worker = BotWorker(db, OrderParser(), content, router_config, owner="w1", idle_poll_s=0.05)
    await record_inbound(db, dm("my package QX-77 is lost", sender="814", handle="acme_ceo"))
    await worker.drain()
    [ticket_id] = (await _ticket_tags(db)).keys()
    card = await load_card(db, ticket_id)
    assert card is not None and "\nTags: #order #vip\n" in render(card)
