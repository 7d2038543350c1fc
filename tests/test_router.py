"""The bot's rules (issue 5) as pure-function tests: real content files, ParseResult values as data."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.content import Content, ContentError, load_content
from frontdesk.core.business_hours import HoursError, parse_business_hours
from bot.router import (
    AddToTicket,
    CancelRegistration,
    Escalate,
    QueueNotice,
    Register,
    Reply,
    RouterConfig,
    UpdateState,
    extract_lead,
    route,
)
from nlu.client import Entity
from tests.fixtures.bot import BRAND_ID, incoming


def _escalation(decision) -> Escalate:  # type: ignore[no-untyped-def]
    found = decision.of(Escalate)
    assert len(found) == 1, f"expected one escalation, got {decision}"
    return found[0]


def _reply_text(decision) -> str:  # type: ignore[no-untyped-def]
    found = decision.of(Reply)
    assert len(found) == 1, f"expected one reply, got {decision}"
    return found[0].text


def _state(decision) -> dict:  # type: ignore[no-untyped-def]
    merged: dict = {}
    for update in decision.of(UpdateState):
        merged.update(update.changes)
    return merged


# --- who holds the conversation ------------------------------------------------------------------------------


def test_agent_holding_the_conversation_silences_the_bot(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("where is my order??", "order_problem", status="agent"), content, router_config)
    assert decision.effects == []


def test_queued_customer_gets_only_the_queue_note(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("hello? anyone?", "greet", status="queued"), content, router_config)
    assert [type(e) for e in decision.effects] == [QueueNotice]
    assert "queue" in decision.effects[0].text


# --- support --------------------------------------------------------------------------------------------------


def test_support_dm_answered_from_the_faq(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("how do I reset my password?", "account_login", 0.91), content, router_config)
    assert "https://app.example.com/reset" in _reply_text(decision)
    assert not decision.of(Escalate)
    assert _state(decision)["faq_answered"] == "password-reset"


def test_faq_needs_a_keyword_match_not_only_the_intent(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("the parcel box smelled of fish", "order_problem", 0.9), content, router_config)
    ticket = _escalation(decision)
    assert (ticket.queue, ticket.reason) == ("support", "no FAQ answer")
    assert "support team" in ticket.notice


def test_support_below_the_confidence_threshold_is_not_answered(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("reset password?", "account_login", 0.3), content, router_config)
    assert "didn't quite get that" in _reply_text(decision)


def test_it_did_not_help_escalates_to_support(content: Content, router_config: RouterConfig) -> None:
    state = {"faq_answered": "password-reset"}
    decision = route(incoming("that didn't help, still locked out", "complaint", 0.6, state=state), content,
                     router_config)
    ticket = _escalation(decision)
    assert ticket.queue == "support"
    assert ticket.data["faq_answered"] == "password-reset"
    assert _state(decision)["faq_answered"] is None


@pytest.mark.parametrize(
    "text", ["This is UNACCEPTABLE, my order is two weeks late", "WHERE IS MY ORDER I PAID A MONTH AGO",
             "still waiting for my order!!!"],
)
def test_angry_support_messages_get_high_priority(content: Content, router_config: RouterConfig, text: str) -> None:
    decision = route(incoming(text, "order_problem", 0.9), content, router_config)
    ticket = _escalation(decision)
    assert (ticket.queue, ticket.priority) == ("support", "high")
    assert not decision.of(Reply)


def test_complaint_is_escalated_high_not_answered(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("your refund process is a joke", "complaint", 0.95), content, router_config)
    ticket = _escalation(decision)
    assert ticket.priority in ("high", "urgent")
    assert "sorry" in ticket.notice.lower()


def test_public_complaint_gets_one_short_reply_inviting_a_dm(content: Content, router_config: RouterConfig) -> None:
    text = "@frontdesk order AB-12345 never came, email me at jane@example.com. Worst service ever"
    decision = route(incoming(text, "complaint", 0.9, kind="public"), content, router_config)
    ticket = _escalation(decision)
    assert ticket.queue == "support" and ticket.priority == "high"
    assert len(ticket.notice) <= 280
    assert f"https://x.com/messages/compose?recipient_id={BRAND_ID}" in ticket.notice
    for private in ("AB-12345", "jane@example.com", "12345"):
        assert private not in ticket.notice
    assert not decision.of(Reply)


def test_public_support_question_is_not_answered_in_public(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("@frontdesk how do I reset my password", "account_login", 0.95, kind="public"),
                     content, router_config)
    assert "app.example.com/reset" not in _escalation(decision).notice
    assert "DM" in _escalation(decision).notice


# --- sales ----------------------------------------------------------------------------------------------------


def test_sales_opens_the_sales_ticket_at_once_and_the_answer_joins_it(
    content: Content, router_config: RouterConfig
) -> None:
    first = route(incoming("how much does the pro plan cost?", "pricing", 0.95, message_id=1), content, router_config)
    opened = _escalation(first)
    # A prospect who never answers the question is already in the Sales queue.
    assert (opened.queue, opened.category) == ("sales", "sales")
    assert "company" in opened.notice and "how many people" in opened.notice
    assert "example.com/pricing" in opened.notice  # the pricing FAQ entry answers beside the question
    state = _state(first)
    assert state["lead_asked"] is True and state["lead"]["interest"] == "pricing"

    # The answer reads as a request for a person to the NLU; inside the lead flow it is the lead's details.
    second = route(
        incoming("we're Northwind, about 120 staff, reach me at sam@northwind.example", "ask_human", 0.92,
                 status="queued", state=state, message_id=2),
        content, router_config,
    )
    assert second.of(Escalate) == []  # no second ticket: the open one gets the details
    [update] = second.of(AddToTicket)
    assert update.queue == "sales"
    lead = update.data["lead"]
    assert (lead["company"], lead["size"], lead["email"]) == ("Northwind", "120", "sam@northwind.example")
    assert "pricing" in lead["summary"] and "Northwind" in lead["summary"]
    [noted] = second.of(QueueNotice)
    assert "sales team" in noted.text
    assert _state(second)["lead_asked"] is None  # asked once: later messages just wait in the queue


def test_complete_lead_goes_straight_to_sales(content: Content, router_config: RouterConfig) -> None:
    text = "Could we get a demo? I'm with Northwind Traders, a team of 25 agents, contact ana@northwind.com"
    ticket = _escalation(route(incoming(text, "demo_quote", 0.88), content, router_config))
    assert ticket.queue == "sales"
    assert ticket.data["lead"]["company"] == "Northwind Traders"
    assert ticket.data["lead"]["size"] == "25"


def test_lead_extraction_without_details_finds_nothing() -> None:
    assert extract_lead("how much is it?", None) == {"company": "", "size": "", "email": ""}


# --- events -----------------------------------------------------------------------------------------------------


def test_next_webinar_is_answered_from_the_catalogue(content: Content, router_config: RouterConfig) -> None:
    text = _reply_text(route(incoming("when is the next webinar?", "event_info", 0.9), content, router_config))
    assert "Getting started with Frontdesk (webinar)" in text
    assert "3 December 2026" in text and "16:00" in text and "https://events.example.com/getting-started" in text


def test_past_events_are_not_offered(content: Content, router_config: RouterConfig) -> None:
    later = datetime(2026, 12, 20, 12, 0, tzinfo=timezone.utc)
    text = _reply_text(route(incoming("when is the next event", "event_info", now=later), content, router_config))
    assert "webinar" not in text.lower() and "meetup" in text.lower()


def test_register_me_for_a_named_event(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("register me for the Berlin meetup", "event_registration"), content, router_config)
    [register] = decision.of(Register)
    assert register.event.key == "meetup-berlin-2027-01"  # the store decides new / already / full


def test_register_without_a_name_asks_which_then_registers(content: Content, router_config: RouterConfig) -> None:
    first = route(incoming("register me please", "event_registration"), content, router_config)
    assert "Which event" in _reply_text(first)
    state = _state(first)
    second = route(incoming("2", "out_of_scope", 0.2, state=state, message_id=2), content, router_config)
    [register] = second.of(Register)
    assert register.event.key == state["offered_events"][1]


def test_cancel_the_only_registration(content: Content, router_config: RouterConfig) -> None:
    decision = route(
        incoming("please cancel my registration", "event_cancellation",
                 registrations=frozenset({"workshop-automation-2026-12"})),
        content, router_config,
    )
    [cancel] = decision.of(CancelRegistration)
    assert cancel.event.key == "workshop-automation-2026-12"


def test_event_unknown_to_the_catalogue_escalates_to_events(content: Content, router_config: RouterConfig) -> None:
    entities = [Entity("event", "Paris hackathon", 12, 27)]
    decision = route(incoming("is there a Paris hackathon?", "event_info", entities=entities), content, router_config)
    assert _escalation(decision).queue == "events"


def test_recording_question(content: Content, router_config: RouterConfig) -> None:
    text = _reply_text(route(incoming("will the webinar be recorded?", "livestream_recording"), content,
                             router_config))
    assert "recorded" in text


# --- human, smalltalk, unclear ------------------------------------------------------------------------------------


def test_asking_for_a_human_escalates_at_once(content: Content, router_config: RouterConfig) -> None:
    ticket = _escalation(route(incoming("I want a human", "ask_human", 0.97), content, router_config))
    assert ticket.category == "human" and ticket.priority in ("high", "urgent")


def test_smalltalk_gets_a_reply_and_no_ticket(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("thanks a lot!", "thanks", 0.95), content, router_config)
    assert "welcome" in _reply_text(decision).lower()
    assert not decision.of(Escalate)


def test_unclear_asks_to_rephrase_once_then_escalates_to_general(
    content: Content, router_config: RouterConfig
) -> None:
    first = route(incoming("purple monkey dishwasher", "out_of_scope", 0.8), content, router_config)
    assert "other words" in _reply_text(first)
    second = route(incoming("banana", "out_of_scope", 0.7, state=_state(first), message_id=2), content,
                   router_config)
    assert _escalation(second).queue == "general"


def test_nlu_down_escalates_to_general_with_the_reason(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("my order?", nlu_error="NLU server unavailable: refused"), content, router_config)
    ticket = _escalation(decision)
    assert ticket.queue == "general" and "NLU unavailable" in ticket.reason


# --- business hours ---------------------------------------------------------------------------------------------


def test_outside_business_hours_escalations_say_when_agents_are_back(content: Content) -> None:
    config = RouterConfig(brand_user_id=BRAND_ID, hours=parse_business_hours("Mon-Fri 09:00-17:00", "Europe/Berlin"))
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    ticket = _escalation(route(incoming("I want a human", "ask_human", now=saturday), content, config))
    assert "Monday 09:00 (Europe/Berlin)" in ticket.notice
    public = _escalation(route(incoming("@frontdesk awful service", "complaint", kind="public", now=saturday),
                               content, config))
    assert len(public.notice) <= 280 and "Monday 09:00" in public.notice
    weekday = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    assert "offline" not in _escalation(route(incoming("human please", "ask_human", now=weekday), content,
                                              config)).notice


def test_business_hours_parsing() -> None:
    hours = parse_business_hours("Mon-Fri 09:00-17:00, Sat 10:00-14:00", "UTC")
    assert hours.is_open(datetime(2026, 11, 28, 11, 0, tzinfo=timezone.utc))  # Saturday
    assert not hours.is_open(datetime(2026, 11, 29, 11, 0, tzinfo=timezone.utc))  # Sunday
    assert hours.describe_next_opening(datetime(2026, 11, 29, 11, 0, tzinfo=timezone.utc)) == "tomorrow at 09:00 (UTC)"
    with pytest.raises(HoursError, match="Mon-Fri 09:00-17:00"):
        parse_business_hours("weekdays 9 to 5")


# --- content validation -----------------------------------------------------------------------------------------


def test_content_errors_name_the_file_the_line_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "faq.yml").write_text("faq:\n  - key: a\n    intents: [how_to]\n    keywords: [x]\n    answer: ok\n")
    (tmp_path / "events.yml").write_text(
        "events:\n"
        "  - key: good-one\n    name: Good\n    starts_at: '2026-12-01T10:00:00+00:00'\n    timezone: UTC\n"
        "    stream_url: https://e.example/live\n    registration_url: https://e.example/r\n"
        "  - key: bad-one\n    name: Bad\n    starts_at: '2026-12-01 10:00'\n    timezone: UTC\n"
        "    place: Hall 1\n    registration_url: https://e.example/r\n"
    )
    with pytest.raises(ContentError) as info:
        load_content(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'events.yml'}:8:" in message and "starts_at" in message and "UTC offset" in message


def test_real_content_files_load(content: Content) -> None:
    assert len(content.faq) >= 10 and len(content.events) >= 3


def test_contest_question_is_not_in_the_catalogue(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("how do I enter the giveaway?", "contest_promo"), content, router_config)
    assert _escalation(decision).queue == "events"


def test_product_issue_answered_from_the_faq(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("my headphones are not charging", "product_issue"), content, router_config)
    assert "help.example.com/devices" in _reply_text(decision)


def test_a_message_without_text_goes_to_a_person(content: Content, router_config: RouterConfig) -> None:
    decision = route(incoming("", nlu_error="empty message"), content, router_config)
    assert _escalation(decision).reason.startswith("no text")


def test_a_third_party_in_the_customers_thread_gets_no_bot_action(
    content: Content, router_config: RouterConfig
) -> None:
    message = replace(incoming("register me for the Berlin meetup", "event_registration", kind="public"),
                      from_third_party=True)
    decision = route(message, content, router_config)
    assert decision.effects == [] and "third party" in decision.rule
