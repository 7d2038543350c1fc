"""Applying the router's decision: each effect becomes one store action, inside the message's transaction.

The router (`bot/router.py`) says *what* to do as data; this module is the one place that turns each kind
of effect into the `storage.actions` call that does it.  The store decides outcomes (a registration is
new, repeated or full) and this module phrases them with `bot.replies`, so nothing here re-implements a
store rule and nothing in the router guesses what the store will say.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import replies
from bot.router import (
    AddToTicket,
    CancelRegistration,
    Decision,
    Effect,
    Escalate,
    OptIn,
    OptOut,
    QueueNotice,
    RecordCsat,
    Register,
    Reply,
    TagTicket,
    UpdateState,
)
from frontdesk.core import metrics
from frontdesk.core.logging import log_context
from storage.actions import bot_reply_in, escalate_in, send_queue_notice_in, update_bot_state_in
from storage.actions.csat import record_answer_in
from storage.actions.consent import ConsentOutcome, opt_in_in, opt_out_in
from storage.actions.registrations import RegistrationOutcome, cancel_in, register_in
from storage.actions.tags import tag_open_ticket_in
from storage.errors import PublicReplyNotAllowed
from storage.models import Conversation, Message, utcnow

log = logging.getLogger("frontdesk.bot")


@dataclass
class Applied:
    """What applying one decision did: counted, and the outbox woken, once the transaction commits."""

    replied: int = 0
    escalated: int = 0
    queued_outbound: bool = False


@dataclass(frozen=True)
class _Target:
    session: AsyncSession
    conversation: Conversation
    answer_key: str  # "answer:<message id>": the one bot answer this message may get
    message_id: int


async def apply_decision_in(
    session: AsyncSession, conversation: Conversation, message_id: int, decision: Decision
) -> Applied:
    """Apply every effect of `decision` (about message `message_id`) in the caller's transaction."""
    assert conversation.id is not None
    target = _Target(session, conversation, f"answer:{message_id}", message_id)
    applied = Applied()
    for effect in decision.effects:
        await _APPLIERS[type(effect)](target, effect, applied)
    return applied


async def _reply(target: _Target, effect: Reply, applied: Applied) -> None:
    await _answer(target, effect.text, applied)


async def _queue_notice(target: _Target, effect: QueueNotice, applied: Applied) -> None:
    if await send_queue_notice_in(target.session, _id(target), effect.text) is not None:
        applied.queued_outbound = True


async def _escalate(target: _Target, effect: Escalate, applied: Applied) -> None:
    ticket = await escalate_in(
        target.session, _id(target), queue=effect.queue, priority=effect.priority, category=effect.category,
        subject=effect.subject, reason=effect.reason, data=effect.data, notice_text=effect.notice or None,
    )
    applied.escalated += 1
    applied.queued_outbound = True
    metrics.ticket_opened(effect.queue, effect.category)
    with log_context(ticket_id=ticket.id):
        log.info("conversation %s escalated to %s as ticket %s: %s", _id(target), effect.queue, ticket.id,
                 effect.reason)


async def _add_to_ticket(target: _Target, effect: AddToTicket, applied: Applied) -> None:
    # On the open ticket escalate_in only merges `data` and audits "updated" (no ticket, no notice, so
    # not counted as opened).  Were the ticket closed meanwhile it would open one: the lead is never lost.
    await escalate_in(
        target.session, _id(target), queue=effect.queue, category=effect.category, reason=effect.reason,
        data=effect.data,
    )
    log.info("conversation %s: %s", _id(target), effect.reason)


_REGISTRATION_REPLIES = {
    RegistrationOutcome.registered: replies.registered,
    RegistrationOutcome.already: replies.already_registered,
    RegistrationOutcome.full: replies.event_full,
}


async def _register(target: _Target, effect: Register, applied: Applied) -> None:
    outcome = await register_in(
        target.session, target.conversation.contact_id, effect.event.key, capacity=effect.event.capacity,
        conversation_id=_id(target),
    )
    if outcome is RegistrationOutcome.registered:
        # Registering is an explicit opt-in (docs/outbound.md#consent); the registration reply says enough.
        await opt_in_in(target.session, target.conversation.contact_id)
    await _answer(target, _REGISTRATION_REPLIES[outcome](effect.voice, effect.event), applied)


async def _cancel_registration(target: _Target, effect: CancelRegistration, applied: Applied) -> None:
    cancelled = await cancel_in(target.session, target.conversation.contact_id, effect.event.key)
    text = (replies.registration_cancelled(effect.voice, effect.event) if cancelled
            else replies.nothing_to_cancel(effect.voice, effect.event))
    await _answer(target, text, applied)


async def _opt_out(target: _Target, effect: OptOut, applied: Applied) -> None:
    outcome = await opt_out_in(target.session, target.conversation.contact_id)
    log.info("conversation %s: opted out of announcements (%s)", _id(target), outcome.value)
    if outcome is ConsentOutcome.changed and effect.confirm:
        await _answer(target, replies.opted_out(effect.voice), applied)


async def _opt_in(target: _Target, effect: OptIn, applied: Applied) -> None:
    outcome = await opt_in_in(target.session, target.conversation.contact_id)
    log.info("conversation %s: opted in to announcements (%s)", _id(target), outcome.value)
    if outcome is ConsentOutcome.changed and effect.confirm:
        await _answer(target, replies.opted_in(effect.voice), applied)


async def _update_state(target: _Target, effect: UpdateState, applied: Applied) -> None:
    await update_bot_state_in(target.session, _id(target), effect.changes)


async def _tag_ticket(target: _Target, effect: TagTicket, applied: Applied) -> None:
    added = await tag_open_ticket_in(target.session, _id(target), effect.tags)
    if added:
        log.info("conversation %s: ticket tagged %s", _id(target), ", ".join(added))


async def _record_csat(target: _Target, effect: RecordCsat, applied: Applied) -> None:
    if not await record_answer_in(target.session, effect.ticket_id, target.message_id, effect.score, effect.comment,
                                  utcnow()):
        return  # answered before (a retried message): said thanks then
    try:
        sent = await bot_reply_in(target.session, _id(target), effect.thanks, idempotency_key=target.answer_key,
                                  check_queued=False)
    except PublicReplyNotAllowed:  # X would refuse a thanks here: the score is stored, nothing else to do
        log.info("conversation %s: CSAT thanks withheld (X would refuse the public reply)", _id(target))
        return
    if sent is not None:
        applied.replied += 1
        applied.queued_outbound = True


async def _answer(target: _Target, text: str, applied: Applied) -> None:
    # The key can only exist if this message's transaction committed, and then the message is marked
    # handled and never comes back here: no need to look for it first.
    try:
        sent = await bot_reply_in(target.session, _id(target), text, idempotency_key=target.answer_key,
                                  check_queued=False)
    except PublicReplyNotAllowed as refusal:  # refused before anything was written
        await _leave_to_an_agent(target, str(refusal), applied)
        return
    if sent is not None:
        applied.replied += 1
        applied.queued_outbound = True


async def _leave_to_an_agent(target: _Target, refusal: str, applied: Applied) -> None:
    """X would refuse the bot's public answer (the post does not summon the brand): a person decides instead.

    A ticket in `general`, its reason saying why, so the desk shows it and nothing is sent to fail.
    """
    message = await target.session.get(Message, target.message_id)
    subject = " ".join((message.text if message else "").split())[:120] or "(public post)"
    ticket = await escalate_in(
        target.session, _id(target), queue="general", priority="normal", category="other", subject=subject,
        reason=f"no public answer possible: {refusal}", data={"reason": "X forbids a public reply here"},
        notice_text=None,
    )
    applied.escalated += 1
    metrics.ticket_opened("general", "other")
    log.info("conversation %s: public answer withheld (X would refuse it), ticket %s", _id(target), ticket.id)


def _id(target: _Target) -> int:
    assert target.conversation.id is not None
    return target.conversation.id


_APPLIERS: dict[type[Any], Callable[[_Target, Any, Applied], Awaitable[None]]] = {
    Reply: _reply,
    QueueNotice: _queue_notice,
    Escalate: _escalate,
    AddToTicket: _add_to_ticket,
    Register: _register,
    CancelRegistration: _cancel_registration,
    UpdateState: _update_state,
    TagTicket: _tag_ticket,
    RecordCsat: _record_csat,
    OptOut: _opt_out,
    OptIn: _opt_in,
}
# Every effect the router can return has exactly one applier (checked at import, not at the first message).
if set(_APPLIERS) != set(Effect.__args__):  # type: ignore[attr-defined]
    raise RuntimeError("bot/effects.py: every effect type in bot.router.Effect needs an applier in _APPLIERS")
