"""The routing policy is data (issue 20): the taxonomy decides every ticket's queue and priority.

A brand edits `content/taxonomy.yml` (or points FRONTDESK_TAXONOMY_PATH elsewhere) and the bot routes
differently with no code change; the router's rules only ever raise the taxonomy's priority.  Pure
router decisions first, then the worker against a real store (SQLite and PostgreSQL) with a fake parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.content import Content
from frontdesk.core.business_hours import parse_business_hours
from bot.router import Escalate, RouterConfig, route
from bot.taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, TaxonomyError, load_taxonomy
from bot.worker import BotWorker
from frontdesk.core.settings import Settings
from nlu.client import ParseResult
from storage.actions import record_inbound
from storage.db import Database
from storage.models import Message, Ticket
from tests.fixtures.bot import BRAND_ID, incoming, nlu_result
from tests.store_helpers import dm


def _brand_taxonomy(tmp_path: Path, fallback: dict | None = None, **changes: dict) -> Taxonomy:
    """The shipped taxonomy with some intents re-routed, written as a brand would and loaded from disk."""
    raw = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8"))
    raw["intents"].update(changes)
    if fallback is not None:
        raw["fallback"] = fallback
    path = tmp_path / "taxonomy.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_taxonomy(path)


def _config(taxonomy: Taxonomy) -> RouterConfig:
    return RouterConfig(brand_user_id=BRAND_ID, hours=parse_business_hours(""), taxonomy=taxonomy)


def _ticket(decision) -> Escalate:  # type: ignore[no-untyped-def]
    [ticket] = decision.of(Escalate)
    return ticket


# --- the router ---------------------------------------------------------------------------------------------------


def test_a_support_intent_moved_to_another_queue_escalates_there(content: Content, tmp_path: Path) -> None:
    config = _config(_brand_taxonomy(
        tmp_path, order_problem={"category": "support", "queue": "general", "priority": "urgent"}
    ))
    ticket = _ticket(route(incoming("my parcel is lost and nobody answers", "order_problem"), content, config))
    assert (ticket.queue, ticket.priority, ticket.category) == ("general", "urgent", "support")
    public = _ticket(route(incoming("@brand my parcel is lost", "order_problem", kind="public"), content, config))
    assert (public.queue, public.priority) == ("general", "urgent")


def test_the_human_rule_raises_the_priority_but_keeps_the_queue(content: Content, tmp_path: Path) -> None:
    config = _config(_brand_taxonomy(
        tmp_path, ask_human={"category": "human", "queue": "support", "priority": "low"}
    ))
    ticket = _ticket(route(incoming("I want a person", "ask_human"), content, config))
    assert (ticket.queue, ticket.priority, ticket.category) == ("support", "high", "human")


def test_anger_never_lowers_an_urgent_intent(content: Content, tmp_path: Path) -> None:
    config = _config(_brand_taxonomy(
        tmp_path, outage={"category": "support", "queue": "support", "priority": "urgent"}
    ))
    ticket = _ticket(route(incoming("EVERYTHING IS DOWN, THIS IS UNACCEPTABLE!!!", "outage"), content, config))
    assert ticket.priority == "urgent"


def test_no_nlu_and_unclear_messages_use_the_taxonomys_fallback(content: Content, tmp_path: Path) -> None:
    config = _config(_brand_taxonomy(tmp_path, fallback={"category": "other", "queue": "support", "priority": "high"}))
    down = _ticket(route(incoming("hello?", nlu_error="NLU server unavailable: refused"), content, config))
    assert (down.queue, down.priority, down.category) == ("support", "high", "other")
    twice = route(incoming("zzz", "out_of_scope", state={"rephrase_asked": True}), content, config)
    assert (_ticket(twice).queue, _ticket(twice).priority) == ("support", "high")


def test_an_intent_the_taxonomy_does_not_know_routes_by_the_fallback(content: Content) -> None:
    decision = route(incoming("???", "intent_of_a_newer_model", confidence=0.99), content, RouterConfig())
    assert not decision.of(Escalate)  # asks to rephrase first, like any unclear message
    assert decision.rule == "unclear: ask to rephrase once"


def test_a_follow_up_goes_to_the_queue_of_the_category_it_belongs_to(content: Content, tmp_path: Path) -> None:
    """"That didn't help" after an FAQ answer is not itself a support intent: the support category's queue."""
    shipped = load_taxonomy()
    general = {i: {"category": "support", "queue": "general", "priority": "normal"} for i in shipped.intents_in("support")}
    config = _config(_brand_taxonomy(tmp_path, **general))
    decision = route(
        incoming("no that didn't help", "out_of_scope", state={"faq_answered": "order-tracking"}), content, config
    )
    ticket = _ticket(decision)
    assert (ticket.queue, ticket.category, ticket.reason) == ("general", "support", "the FAQ answer did not help")
    assert _ticket(route(
        incoming("no that didn't help", "out_of_scope", state={"faq_answered": "order-tracking"}), content, RouterConfig()
    )).queue == "support"  # the shipped taxonomy: support intents go to the support queue


# --- the taxonomy file and its setting -----------------------------------------------------------------------------


def test_the_taxonomy_follows_the_content_directory_unless_set(tmp_path: Path) -> None:
    assert Settings(_env_file=None).effective_taxonomy_path == DEFAULT_TAXONOMY_PATH  # type: ignore[call-arg]
    moved = Settings(_env_file=None, content_dir=tmp_path)  # type: ignore[call-arg]
    assert moved.effective_taxonomy_path == tmp_path / "taxonomy.yml"
    chosen = Settings(_env_file=None, content_dir=tmp_path, taxonomy_path=tmp_path / "b.yml")  # type: ignore[call-arg]
    assert chosen.effective_taxonomy_path == tmp_path / "b.yml"


def test_a_missing_taxonomy_names_the_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="FRONTDESK_TAXONOMY_PATH"):
        load_taxonomy(tmp_path / "nowhere.yml")


def test_a_bad_fallback_is_refused_with_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="queue is 'helpdesk'; use one of"):
        _brand_taxonomy(tmp_path, fallback={"category": "other", "queue": "helpdesk", "priority": "normal"})


# --- the worker: the stored category and the ticket come from the configured taxonomy ------------------------------


class _SaysGreet:
    async def parse(self, text: str) -> ParseResult:
        return nlu_result("greet", 0.97, text)


async def test_the_worker_routes_and_records_by_the_configured_taxonomy(
    db: Database, content: Content, tmp_path: Path
) -> None:
    """A brand that treats every "hello" as a request for a person: a ticket, and the message filed as `human`."""
    config = _config(_brand_taxonomy(
        tmp_path, greet={"category": "human", "queue": "sales", "priority": "urgent"}
    ))
    recorded = await record_inbound(db, dm("hello", sender="9901"))
    await BotWorker(db, _SaysGreet(), content, config, owner="w1", idle_poll_s=0.05).drain()
    async with db.session() as session:
        message = (await session.execute(select(Message).where(Message.id == recorded.message_id))).scalar_one()
        ticket = (await session.execute(
            select(Ticket).where(Ticket.conversation_id == recorded.conversation_id)
        )).scalar_one()
    assert (message.intent, message.category) == ("greet", "human")
    assert (ticket.queue.value, ticket.priority.name, ticket.category) == ("sales", "urgent", "human")
