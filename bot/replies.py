"""Everything the bot says, in one place, so wording can be reviewed (and translated) without reading logic.

Public replies on X must fit one tweet (280 characters) and never contain anything the customer wrote:
no order numbers, emails or account details are repeated in public.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.content import Event
from frontdesk.core.vocabulary import X_POST_MAX_CHARS

DM_DEEP_LINK = "https://x.com/messages/compose?recipient_id={brand_id}"


def dm_link(brand_user_id: str) -> str:
    return DM_DEEP_LINK.format(brand_id=brand_user_id) if brand_user_id else ""


def hours_note(next_opening: str) -> str:
    """Said beside an escalation outside business hours."""
    return f"Our team is offline right now and back {next_opening}." if next_opening else ""


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# --- public mentions -----------------------------------------------------------------------------------


def public_invite_dm(brand_user_id: str, *, complaint: bool, next_opening: str = "") -> str:
    """The one public reply to a support mention: move to DM, without repeating anything personal."""
    opener = "We're sorry about this and want to put it right." if complaint else "Thanks for reaching out!"
    link = dm_link(brand_user_id)
    invite = (
        f"Please send us a DM so we can look into it privately (no need to share details here): {link}"
        if link
        else "Please send us a DM so we can look into it privately (no need to share details here)."
    )
    return _fit(_join(opener, invite, hours_note(next_opening)), _join(opener, invite))


def public_sales(brand_user_id: str, next_opening: str = "") -> str:
    link = dm_link(brand_user_id)
    text = "Thanks for your interest! Our sales team will get back to you. Send us a DM with a few details"
    text += f": {link}" if link else "."
    return _fit(_join(text, hours_note(next_opening)), text)


def public_human(brand_user_id: str, next_opening: str = "") -> str:
    link = dm_link(brand_user_id)
    text = "A member of our team will pick this up. To talk privately, send us a DM"
    text += f": {link}" if link else "."
    return _fit(_join(text, hours_note(next_opening)), text)


def _fit(preferred: str, fallback: str) -> str:
    return preferred if len(preferred) <= X_POST_MAX_CHARS else fallback[:X_POST_MAX_CHARS]


# --- private conversations ------------------------------------------------------------------------------


def faq_answer(answer: str) -> str:
    return f"{answer}\n\nDid that help? If not, just say so and I'll pass you to a colleague."


def escalated_support(next_opening: str = "", *, complaint: bool = False) -> str:
    opener = "I'm sorry about this." if complaint else ""
    return _join(opener, "I've passed your message to our support team; a person will reply right here.",
                 hours_note(next_opening))


def escalated_general(next_opening: str = "") -> str:
    return _join("I've passed your message to our team; a person will reply right here.", hours_note(next_opening))


def escalated_human(next_opening: str = "") -> str:
    return _join("Of course: I've asked a person to take over. They'll reply right here.", hours_note(next_opening))


def escalated_events(next_opening: str = "") -> str:
    return _join("I don't have that in our events list, so I've asked our events team; they'll reply here.",
                 hours_note(next_opening))


def escalated_nlu_down(next_opening: str = "") -> str:
    return _join("Thanks for your message. I've passed it to our team and a person will reply right here.",
                 hours_note(next_opening))


def queue_notice(next_opening: str = "") -> str:
    return _join("You're in the queue: a person will reply here as soon as they can. No need to write again.",
                 hours_note(next_opening))


def ask_rephrase() -> str:
    return ("Sorry, I didn't quite get that. Could you say it in other words? I can help with orders, "
            "your account, billing, events and pricing, or get you a person.")


def public_ask_rephrase() -> str:
    return "Sorry, we didn't quite get that. Could you tell us a bit more, or send us a DM?"


# --- sales ------------------------------------------------------------------------------------------------


def ask_lead_details(missing: Sequence[str]) -> str:
    wanted = {
        "company": "your company's name",
        "size": "roughly how many people would use it",
        "email": "an email address our sales team can reach you at (optional)",
    }
    items = [wanted[m] for m in missing if m in wanted]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"Happy to help! So the right person gets back to you, could you tell me {listed}?"


def sales_ticket_ask(answer: str, missing: Sequence[str], next_opening: str = "") -> str:
    """Sent with the new sales ticket: the FAQ answer if any, then the one question for what is missing."""
    ask = ask_lead_details(missing) + " Our sales team already has your message and will reply here."
    return "\n\n".join(p for p in (answer, _join(ask, hours_note(next_opening))) if p)


def lead_noted(next_opening: str = "") -> str:
    """The answer to the lead question was added to the sales ticket."""
    return _join("Thanks, I've added that for our sales team; they'll reply here.", hours_note(next_opening))


def sales_escalated(next_opening: str = "") -> str:
    when = (
        f"A member of our sales team will reply here; they're back {next_opening}."
        if next_opening
        else "A member of our sales team will reply here within one business day."
    )
    return f"Thanks, I've noted everything. {when}"


# --- smalltalk ---------------------------------------------------------------------------------------------

SMALLTALK = {
    "greet": "Hi! I'm the Frontdesk assistant. Ask me about orders, your account, billing, events or pricing, "
    "or say \"human\" to reach a person.",
    "thanks": "You're welcome! Anything else I can do?",
    "goodbye": "Bye for now, have a good day!",
    "praise": "Thank you, that's kind! We'll pass it on to the team.",
    "chitchat": "Ha, nice chatting! I'm best with orders, your account, billing, events and pricing; "
    "anything I can help with?",
}
PUBLIC_SMALLTALK = {
    "greet": "Hi! How can we help? For anything about your order or account, send us a DM.",
    "thanks": "You're welcome!",
    "goodbye": "Have a good day!",
    "praise": "Thank you, that's kind! We'll pass it on to the team.",
    "chitchat": "Thanks for the chat! Let us know if there's anything we can help with.",
}


def smalltalk(intent: str | None, *, public: bool) -> str:
    table = PUBLIC_SMALLTALK if public else SMALLTALK
    return table.get(intent or "", table["thanks"] if intent else table["greet"])


# --- events ------------------------------------------------------------------------------------------------


def when(event: Event) -> str:
    start = event.starts_at
    end = event.ends_at
    return f"{start:%A} {start.day} {start:%B %Y}, {start:%H:%M}–{end:%H:%M} {start:%Z} ({event.timezone})"


def where(event: Event) -> str:
    if event.place and event.stream_url:
        return f"at {event.place} and streamed at {event.stream_url}"
    if event.place:
        return f"at {event.place}"
    return f"online at {event.stream_url}"


def event_info(event: Event, *, public: bool) -> str:
    if public:
        start = event.starts_at
        short = f"{event.name}: {start:%a} {start.day} {start:%b}, {start:%H:%M} {start:%Z}. Register: " \
                f"{event.registration_url}"
        return short[:X_POST_MAX_CHARS]
    return (f"{event.name} is on {when(event)}, {where(event)}. "
            f"Register at {event.registration_url}, or tell me \"register me\" and I'll sign you up.")


def event_list(events: Sequence[Event], *, public: bool) -> str:
    if public:
        first = events[0]
        return _fit(f"Next up: {first.name}, {first.starts_at:%a} {first.starts_at.day} {first.starts_at:%b}. "
                    f"All events: {first.registration_url.rsplit('/', 1)[0]}", first.name)
    lines = [f"{i}. {e.name}: {when(e)}" for i, e in enumerate(events, 1)]
    return "Here's what's coming up:\n" + "\n".join(lines) + "\n\nAsk me about one, or say \"register me for …\"."


def ask_which_event(events: Sequence[Event], action: str) -> str:
    lines = [f"{i}. {e.name} ({e.starts_at:%a} {e.starts_at.day} {e.starts_at:%b})" for i, e in enumerate(events, 1)]
    verb = "register you for" if action == "register" else "cancel"
    return f"Which event should I {verb}?\n" + "\n".join(lines) + "\n\nReply with the number or the name."


def confirm_event(event: Event, action: str) -> str:
    """The customer's words do not quite match one event: name it with its date and ask before acting."""
    start = event.starts_at
    verb = "register you for" if action == "register" else "cancel"
    return f"{event.name} is on {start:%A} {start.day} {start:%B} — shall I {verb} that one? (yes / no)"


def registered(event: Event) -> str:
    return (f"Done: you're registered for {event.name} on {when(event)}, {where(event)}. "
            "If your plans change, just tell me \"cancel my registration\".")


def already_registered(event: Event) -> str:
    return f"You're already registered for {event.name} on {when(event)}; see you there!"


def event_full(event: Event) -> str:
    return f"Sorry, {event.name} is fully booked. Ask me about our other events!"


def registration_cancelled(event: Event) -> str:
    return f"Your registration for {event.name} is cancelled. You're welcome back any time."


def nothing_to_cancel(event: Event | None) -> str:
    if event is None:
        return "I can't find a registration of yours for an upcoming event, so there's nothing to cancel."
    return f"You weren't registered for {event.name}, so there's nothing to cancel."


def recording_info(event: Event) -> str:
    if event.recording:
        return (f"Yes, {event.name} will be recorded; everyone who registers gets the recording by email "
                f"a day later. Register at {event.registration_url}.")
    return f"{event.name} won't be recorded, I'm afraid, so join live if you can: {when(event)}."
