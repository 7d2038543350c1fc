"""Everything the bot says, as a typed API over the brand's words (`content/replies.yml`, bot/texts.py).

The router and bot/effects.py call these functions; the wording itself is content, edited without
touching Python (docs/content.md).  Every function takes a `Voice`: the loaded texts, and who is being
answered where.  In a public conversation the public wording is used: it names the customer and is
picked per message among the brand's wordings, so that no two public replies are the same text (X
refuses duplicates), and it never contains anything the customer wrote (no order numbers, emails or
account details are repeated in public).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.content import Event, shipped_texts
from bot.texts import Texts, x_weighted_length
from frontdesk.core.vocabulary import X_POST_MAX_CHARS

DM_DEEP_LINK = "https://x.com/messages/compose?recipient_id={brand_id}"
DM_INBOX_LINK = "https://x.com/messages"  # without the brand's id: the customer's DM inbox


@dataclass(frozen=True)
class Voice:
    """The texts, and the conversation being answered: public or private, the customer, the message."""

    texts: Texts = field(default_factory=shipped_texts)
    public: bool = False
    handle: str = ""  # the customer's X username, without "@"
    seed: int = 0  # picks the public wording (the message id: another message, likely another wording)
    brand_user_id: str = ""


def dm_link(brand_user_id: str) -> str:
    return DM_DEEP_LINK.format(brand_id=brand_user_id) if brand_user_id else DM_INBOX_LINK


def hours_note(voice: Voice, next_opening: str) -> str:
    """Said beside an escalation outside business hours."""
    return voice.texts.part("hours_note", next_opening=next_opening) if next_opening else ""


def _public(voice: Voice, key: str, **values: str) -> str:
    values = {"handle": voice.handle.lstrip("@"), "dm_link": dm_link(voice.brand_user_id), **values}
    text = voice.texts.public(key, seed=voice.seed, **values)
    if x_weighted_length(text) <= X_POST_MAX_CHARS:
        return text
    # Checked at load for the longest values we know of; a longer one still must not make X refuse it.
    return voice.texts.public(key, seed=voice.seed, **{**values, "hours": ""})[:X_POST_MAX_CHARS]


def _either(voice: Voice, key: str, next_opening: str = "", **values: str) -> str:
    """The public wording of `key` in a public conversation, else its DM text."""
    hours = hours_note(voice, next_opening)
    if voice.public:
        return _public(voice, key, hours=hours, **values)
    return voice.texts.dm(key, hours=hours, **values)


# --- public mentions -----------------------------------------------------------------------------------


def public_invite_dm(voice: Voice, *, complaint: bool, next_opening: str = "") -> str:
    """The one public reply to a support mention: move to DM, without repeating anything personal."""
    key = "invite_dm_complaint" if complaint else "invite_dm"
    return _public(voice, key, hours=hours_note(voice, next_opening))


def public_sales(voice: Voice, next_opening: str = "") -> str:
    return _public(voice, "sales", hours=hours_note(voice, next_opening))


def public_human(voice: Voice, next_opening: str = "") -> str:
    """A person takes over a public conversation (whatever the reason: asked for, not understood, NLU down)."""
    return _public(voice, "handed_to_person", hours=hours_note(voice, next_opening))


def public_ask_rephrase(voice: Voice) -> str:
    return _public(voice, "ask_rephrase")


# --- private conversations ------------------------------------------------------------------------------


def faq_answer(voice: Voice, answer: str) -> str:
    return voice.texts.dm("faq_answer", answer=answer)


def escalated_support(voice: Voice, next_opening: str = "", *, complaint: bool = False) -> str:
    key = "escalated_complaint" if complaint else "escalated_support"
    return voice.texts.dm(key, hours=hours_note(voice, next_opening))


def escalated_general(voice: Voice, next_opening: str = "") -> str:
    return voice.texts.dm("escalated_general", hours=hours_note(voice, next_opening))


def escalated_human(voice: Voice, next_opening: str = "") -> str:
    return voice.texts.dm("escalated_human", hours=hours_note(voice, next_opening))


def escalated_events(voice: Voice, next_opening: str = "") -> str:
    return voice.texts.dm("escalated_events", hours=hours_note(voice, next_opening))


def escalated_nlu_down(voice: Voice, next_opening: str = "") -> str:
    return voice.texts.dm("escalated_nlu_down", hours=hours_note(voice, next_opening))


def queue_notice(voice: Voice, next_opening: str = "") -> str:
    return _either(voice, "queue_notice", next_opening)


def ask_rephrase(voice: Voice) -> str:
    return public_ask_rephrase(voice) if voice.public else voice.texts.dm("ask_rephrase")


# --- sales ------------------------------------------------------------------------------------------------


def ask_lead_details(voice: Voice, missing: Sequence[str]) -> str:
    return voice.texts.dm("ask_lead_details", wanted=_lead_wanted(voice, missing))


def _lead_wanted(voice: Voice, missing: Sequence[str]) -> str:
    """"your company's name and roughly how many people would use it" (the parts, in the brand's words)."""
    parts = {"company": "lead_company", "size": "lead_size", "email": "lead_email"}
    items = [voice.texts.part(parts[m]) for m in missing if m in parts]
    joiner = f" {voice.texts.part('list_and')} "
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + joiner + items[-1]


def sales_ticket_ask(voice: Voice, answer: str, missing: Sequence[str], next_opening: str = "") -> str:
    """Sent with the new sales ticket: the FAQ answer if any, then the one question for what is missing."""
    return voice.texts.dm("sales_ticket_ask", answer=answer, wanted=_lead_wanted(voice, missing),
                          hours=hours_note(voice, next_opening))


def lead_noted(voice: Voice, next_opening: str = "") -> str:
    """The answer to the lead question was added to the sales ticket."""
    return voice.texts.dm("lead_noted", hours=hours_note(voice, next_opening))


def sales_escalated(voice: Voice, next_opening: str = "") -> str:
    if next_opening:
        return voice.texts.dm("sales_escalated_after_hours", next_opening=next_opening)
    return voice.texts.dm("sales_escalated")


# --- smalltalk ---------------------------------------------------------------------------------------------

SMALLTALK_INTENTS = ("greet", "thanks", "goodbye", "praise", "chitchat")


def smalltalk(voice: Voice, intent: str | None) -> str:
    """A short friendly line; an unknown small-talk intent is thanked, no intent at all greeted."""
    name = intent if intent in SMALLTALK_INTENTS else ("thanks" if intent else "greet")
    return _either(voice, f"smalltalk_{name}")


# --- events ------------------------------------------------------------------------------------------------


def when(voice: Voice, event: Event) -> str:
    start, end = event.starts_at, event.ends_at
    return voice.texts.part(
        "when", weekday=f"{start:%A}", day=str(start.day), month=f"{start:%B}", year=f"{start:%Y}",
        start=f"{start:%H:%M}", end=f"{end:%H:%M}", zone=f"{start:%Z}", timezone=event.timezone,
    )


def date(voice: Voice, event: Event) -> str:
    """Short: "Wed 3 Dec, 16:00 CET"."""
    start = event.starts_at
    return voice.texts.part("date", weekday=f"{start:%a}", day=str(start.day), month=f"{start:%b}",
                            start=f"{start:%H:%M}", zone=f"{start:%Z}")


def where(voice: Voice, event: Event) -> str:
    if event.place and event.stream_url:
        return voice.texts.part("where_place_and_stream", place=event.place, stream_url=event.stream_url)
    if event.place:
        return voice.texts.part("where_place", place=event.place)
    return voice.texts.part("where_online", stream_url=event.stream_url)


def event_info(voice: Voice, event: Event) -> str:
    if voice.public:
        return _public(voice, "event_info", event=event.name, date=date(voice, event),
                       registration_url=event.registration_url)
    return voice.texts.dm("event_info", event=event.name, when=when(voice, event), where=where(voice, event),
                          registration_url=event.registration_url)


def event_list(voice: Voice, events: Sequence[Event]) -> str:
    if voice.public:
        first = events[0]
        return _public(voice, "event_list", event=first.name, date=date(voice, first),
                       events_url=first.registration_url.rsplit("/", 1)[0])
    lines = [voice.texts.dm("event_list_item", number=str(i), event=e.name, when=when(voice, e))
             for i, e in enumerate(events, 1)]
    return voice.texts.dm("event_list", list="\n".join(lines))


def ask_which_event(voice: Voice, events: Sequence[Event], action: str) -> str:
    verb = voice.texts.part("verb_register" if action == "register" else "verb_cancel")
    if voice.public:
        choices = " ".join(voice.texts.part("public_choice", number=str(i), event=e.name)
                           for i, e in enumerate(events[:4], 1))
        return _public(voice, "ask_which_event", verb=verb, choices=choices)
    lines = [voice.texts.dm("event_choice", number=str(i), event=e.name, date=date(voice, e))
             for i, e in enumerate(events, 1)]
    return voice.texts.dm("ask_which_event", verb=verb, choices="\n".join(lines))


def confirm_event(voice: Voice, event: Event, action: str) -> str:
    """The customer's words do not quite match one event: name it with its date and ask before acting."""
    verb = voice.texts.part("verb_register" if action == "register" else "verb_cancel")
    if voice.public:
        return _public(voice, "confirm_event", event=event.name, date=date(voice, event), verb=verb)
    start = event.starts_at
    day = voice.texts.part("long_date", weekday=f"{start:%A}", day=str(start.day), month=f"{start:%B}")
    return voice.texts.dm("confirm_event", event=event.name, date=day, verb=verb)


def registered(voice: Voice, event: Event) -> str:
    if voice.public:
        return _public(voice, "registered", event=event.name, date=date(voice, event))
    return voice.texts.dm("registered", event=event.name, when=when(voice, event), where=where(voice, event))


def already_registered(voice: Voice, event: Event) -> str:
    if voice.public:
        return _public(voice, "already_registered", event=event.name, date=date(voice, event))
    return voice.texts.dm("already_registered", event=event.name, when=when(voice, event))


def event_full(voice: Voice, event: Event) -> str:
    return _either(voice, "event_full", event=event.name)


def registration_cancelled(voice: Voice, event: Event) -> str:
    return _either(voice, "registration_cancelled", event=event.name)


def nothing_to_cancel(voice: Voice, event: Event | None) -> str:
    if event is None:
        return _either(voice, "nothing_to_cancel")
    return _either(voice, "not_registered", event=event.name)


def recording_info(voice: Voice, event: Event) -> str:
    if event.recording:
        if voice.public:
            return _public(voice, "recording_yes", event=event.name, registration_url=event.registration_url)
        return voice.texts.dm("recording_yes", event=event.name, registration_url=event.registration_url,
                              when=when(voice, event))
    if voice.public:
        return _public(voice, "recording_no", event=event.name, date=date(voice, event))
    return voice.texts.dm("recording_no", event=event.name, when=when(voice, event))


# --- satisfaction (CSAT) ----------------------------------------------------------------------------


def csat_question(voice: Voice) -> str:
    """Asked once when an agent resolved the customer's ticket (storage/actions/csat.py decides when)."""
    return _public(voice, "csat_question") if voice.public else voice.texts.dm("csat_question")


def csat_thanks(voice: Voice) -> str:
    """The answer to "how did we do?" was recorded."""
    return _public(voice, "csat_thanks") if voice.public else voice.texts.dm("csat_thanks")


def csat_phrasing(texts: Texts) -> Callable[[bool, str, int], str]:
    """The question as `storage.actions.csat.CsatPolicy` asks it: (public?, handle, seed) -> text."""
    return lambda public, handle, seed: csat_question(Voice(texts, public, handle, seed))


# --- consent to announcements (docs/outbound.md#consent) -------------------------------------------------------


def opted_in(voice: Voice) -> str:
    """Said once, when "keep me posted" is new."""
    return _public(voice, "opted_in") if voice.public else voice.texts.dm("opted_in")


def opted_out(voice: Voice) -> str:
    """Said once, when "stop" is new; nothing unrequested is sent after it."""
    return _public(voice, "opted_out") if voice.public else voice.texts.dm("opted_out")


def announcement_footer(voice: Voice) -> str:
    """Ends every announcement: how to stop them."""
    return voice.texts.dm("announcement_footer")


# --- event reminders and notices (bot/event_reminders.py) ----------------------------------------------------


def time_until(voice: Voice, seconds: int) -> str:
    """How long until the start, rounded as people say it: "in 2 days", "in 24 hours", "in an hour", "in 30 minutes"."""
    if seconds >= 47.5 * 3600:
        return voice.texts.part("in_days", count=str(round(seconds / 86400)))
    if seconds >= 59.5 * 60:
        hours = round(seconds / 3600)
        return voice.texts.part("in_one_hour") if hours == 1 else voice.texts.part("in_hours", count=str(hours))
    minutes = max(1, round(seconds / 60))
    return voice.texts.part("in_one_minute") if minutes == 1 else voice.texts.part("in_minutes", count=str(minutes))


def join_link(event: Event) -> str:
    """What a public notice points to: the stream, else the place."""
    return event.stream_url or event.place


def event_reminder(voice: Voice, event: Event, seconds_to_start: int) -> str:
    before = time_until(voice, seconds_to_start)
    if voice.public:
        return _public(voice, "event_reminder", event=event.name, date=date(voice, event), link=join_link(event),
                       **{"in": before})
    return voice.texts.dm("event_reminder", event=event.name, when=when(voice, event), where=where(voice, event),
                          **{"in": before})


def event_changed(voice: Voice, event: Event) -> str:
    if voice.public:
        return _public(voice, "event_changed", event=event.name, date=date(voice, event), link=join_link(event))
    return voice.texts.dm("event_changed", event=event.name, when=when(voice, event), where=where(voice, event))


def event_cancelled(voice: Voice, event: Event) -> str:
    if voice.public:
        return _public(voice, "event_cancelled", event=event.name, date=date(voice, event))
    return voice.texts.dm("event_cancelled", event=event.name, when=when(voice, event))
