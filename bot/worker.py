"""The inbox loop: every recorded customer message is parsed, routed and answered, in order, exactly once.

    lease conversations with unhandled messages (storage.inbox)
      for each message, oldest first:  parse (NLU, outside any transaction)
                                       -> decide (bot.router, pure)
                                       -> apply the effects (bot.effects -> storage.actions)
                                          + mark_handled with the NLU result, in ONE transaction
      (a backlog of several: all parsed at once, then applied in order in one transaction)

Different conversations are handled concurrently (up to `concurrency`), one conversation's messages
strictly in order.  A handler that dies half-way commits nothing, so the retry (by this worker or by
another one after the lease lapses) does it all once; bot answers also carry the key "answer:<message id>".

NLU down or answering garbage is not a crash: the message is escalated to `general` with the reason, and
the next message tries the NLU again.  A message that fails for any other reason is retried a few times
and then handed to a person, so it never blocks its conversation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import Content
from bot.effects import Applied, apply_decision_in
from bot.router import Decision, Incoming, RouterConfig, consent_words, lands_on_ticket, route
from frontdesk.core import metrics
from frontdesk.core.logging import log_context
from nlu.client import NLUError, ParseResult
from storage import inbox
from storage.actions import attach_to_open_ticket_in, escalate_in, mark_handled_in
from storage.actions.registrations import registered_events_in
from storage.db import Database
from storage.models import Contact, Conversation, ConversationKind, ConversationStatus, Message, utcnow

log = logging.getLogger("frontdesk.bot")
MAX_ATTEMPTS = 3  # a message failing this often (a bug, not an outage) is escalated instead of retried
BACKLOG_BATCH = 10  # waiting messages of one conversation handled in one transaction
RELOOK_S = 0.05  # after a conversation finishes, lease again no sooner than this after the last lease


class Parser(Protocol):
    async def parse(self, text: str) -> ParseResult: ...


@dataclass
class WorkerStats:
    handled: int = 0
    escalated: int = 0
    replied: int = 0
    nlu_failures: int = 0
    errors: int = 0
    rules: dict[str, int] = field(default_factory=dict)


@dataclass
class _Outcome:
    """What handling one message did, for the bookkeeping after its transaction commits."""

    message: Message
    parsed: ParseResult | None
    decision: Decision
    released: bool
    applied: Applied = field(default_factory=Applied)


class BotWorker:
    """Handles the inbox.  `run()` until cancelled; `wake()` from a channel after it recorded something."""

    def __init__(
        self,
        db: Database,
        nlu: Parser,
        content: Content,
        config: RouterConfig,
        *,
        owner: str | None = None,
        concurrency: int = 8,
        idle_poll_s: float = 1.0,
        lease_s: float = 60.0,
        on_outbound: Callable[[], None] | None = None,
        on_escalated: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.nlu = nlu
        self.content = content
        self.config = config
        self.owner = owner or f"bot-{uuid.uuid4().hex[:8]}"
        self.concurrency = concurrency
        self.idle_poll_s = idle_poll_s
        self.lease_s = lease_s
        self.on_outbound = on_outbound  # e.g. OutboxLoop.wake: deliver what we queued now
        self.on_escalated = on_escalated  # e.g. Assigner.wake: give the new ticket to an online agent now
        self.clock = clock
        self.stats = WorkerStats()
        self._wakeup = asyncio.Event()
        self._failures: dict[int, int] = {}  # message id -> failed attempts in this process
        self._nlu_slots = asyncio.Semaphore(concurrency)
        self.ready = False

    def wake(self) -> None:
        """Look at the inbox now (channels call this after recording a message)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Keep up to `concurrency` conversations in flight; lease more when woken or as room frees up.

        (No waves: a slow conversation never holds up the others' next messages.)
        """
        self.ready = True
        in_flight: set[asyncio.Task[None]] = set()
        # Whether to lease at the next chance.  Not at once after every finished conversation: at a steady
        # rate that lease (and the one after a lease that did not fill the room) found nothing, a
        # transaction per message for nothing.  A lease that filled the room may have left some waiting
        # (look at once); a wake (something was recorded) or the idle poll looks at once too; a finished
        # conversation looks RELOOK_S after the last look, so a worker no channel wakes (`frontdesk
        # worker`, beside the process that records) still finds new conversations while busy.
        loop = asyncio.get_running_loop()
        look, last_look, relook_at = True, 0.0, None
        try:
            while True:
                self._wakeup.clear()
                free = self.concurrency - len(in_flight)
                if free > 0 and look:
                    last_look, relook_at = loop.time(), None
                    try:
                        waiting = await inbox.lease_conversations_with_messages(
                            self.db, self.owner, limit=free, lease_s=self.lease_s
                        )
                        look = len(waiting) == free
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - the store hiccupped; log, back off, go on
                        self.stats.errors += 1
                        log.exception("bot worker: leasing failed; retrying shortly")
                        waiting, look = {}, True
                    in_flight.update(
                        asyncio.ensure_future(self._handle_conversation(cid, pending)) for cid, pending in waiting.items()
                    )
                timeout = self.idle_poll_s if relook_at is None else max(0.0, relook_at - loop.time())
                waiter = asyncio.ensure_future(self._wakeup.wait())
                done, _ = await asyncio.wait(
                    {*in_flight, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                in_flight -= done
                if self._wakeup.is_set() or not done:  # woken, the idle poll, or the re-look is due
                    look = True
                elif not look and relook_at is None:  # a conversation finished: look again soon
                    relook_at = last_look + RELOOK_S
                    look = loop.time() >= relook_at
        finally:
            self.ready = False
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def run_once(self) -> int:
        """One pass: lease conversations with unhandled messages and handle them; returns how many."""
        waiting = await inbox.lease_conversations_with_messages(
            self.db, self.owner, limit=self.concurrency, lease_s=self.lease_s
        )
        if waiting:
            await asyncio.gather(*(self._handle_conversation(cid, pending) for cid, pending in waiting.items()))
        return len(waiting)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Handle everything recorded so far (tests, `frontdesk worker --once`)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self.run_once():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the inbox did not drain in time")

    async def _handle_conversation(self, conversation_id: int, leased_with: list[Message] | None = None) -> None:
        with log_context(conversation_id=conversation_id):
            await self._handle_conversation_logged(conversation_id, leased_with)

    async def _handle_conversation_logged(self, conversation_id: int, leased_with: list[Message] | None) -> None:
        """Handle the conversation's unhandled messages in order, then give the lease back.

        `leased_with`: its waiting messages as read with the lease (spares a read).  Messages that arrive
        meanwhile are handled under the same lease (no release / re-lease round trip); the last message's
        transaction releases the lease when nothing else is waiting.
        """
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.lease_s / 2
        current: Message | None = None
        try:
            while True:
                if leased_with is not None:
                    pending, leased_with = leased_with, None
                else:
                    pending = await inbox.unhandled_messages(self.db, conversation_id)
                if not pending:
                    await inbox.release(self.db, conversation_id, self.owner)
                    return
                if len(pending) > 1:
                    batch = pending[:BACKLOG_BATCH]
                    try:
                        released = await self._handle_backlog(batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - nothing of it was applied: go one at a time
                        log.warning("bot worker: a batch of %d messages in conversation %s failed; "
                                    "handling them one at a time", len(batch), conversation_id, exc_info=True)
                    else:
                        if released:
                            return
                        if loop.time() >= renew_at:
                            await inbox.renew_lease(self.db, conversation_id, self.owner, lease_s=self.lease_s)
                            renew_at = loop.time() + self.lease_s / 2
                        continue
                for index, current in enumerate(pending):
                    last = index == len(pending) - 1
                    released = await self._handle(current, release_if_done=last)
                    if released:
                        return
                    if loop.time() >= renew_at:  # a long backlog (or a slow NLU): keep the conversation ours
                        await inbox.renew_lease(self.db, conversation_id, self.owner, lease_s=self.lease_s)
                        renew_at = loop.time() + self.lease_s / 2
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the message stays unhandled and is retried
            self.stats.errors += 1
            log.exception("bot worker: conversation %s failed; it will be retried", conversation_id)
            if current is not None:
                await self._after_failure(conversation_id, current, exc)
            with contextlib.suppress(Exception):
                await asyncio.sleep(self.idle_poll_s)  # a little backoff before the retry
                await inbox.release(self.db, conversation_id, self.owner)

    async def _after_failure(self, conversation_id: int, message: Message, exc: Exception) -> None:
        """A message that keeps failing must not block its conversation: after a few tries a person gets it."""
        assert message.id is not None
        failures = self._failures[message.id] = self._failures.get(message.id, 0) + 1
        if failures < MAX_ATTEMPTS:
            return
        with contextlib.suppress(Exception):
            async with self.db.transaction() as session:
                await escalate_in(
                    session, conversation_id, queue="general", priority="normal", category="other",
                    subject=" ".join(message.text.split())[:120] or "(empty message)",
                    reason=f"the bot failed on this message {failures} times: {type(exc).__name__}: {exc}"[:500],
                    data={"reason": f"bot error: {type(exc).__name__}"},
                    notice_text=None,
                )
                await mark_handled_in(session, message.id)
            self._failures.pop(message.id, None)
            log.error("bot worker: message %s handed to a person after %d failures", message.id, failures)

    async def _handle(self, message: Message, *, release_if_done: bool) -> bool:
        """The NLU call happens outside any transaction; everything it leads to is ONE transaction.

        The NLU result, every effect (each keeping its own rules and audit events), `handled_at` and —
        when this was the conversation's last waiting message — the lease release commit together or
        not at all, so a crash half-way leaves the message unhandled with nothing of it applied, and the
        retry does it all once.  (One commit per message instead of five or six is most of the worker's
        throughput on SQLite, where every commit is a turn of the single write lock.)
        """
        parsed = await self._parse(message.text)
        async with self.db.transaction() as session:
            outcome = await self._apply_in(session, message, parsed, release_if_done=release_if_done)
        self._after_commit([outcome])
        return outcome.released

    async def _handle_backlog(self, messages: list[Message]) -> bool:
        """Several waiting messages of one conversation: parsed at once, applied in order in ONE transaction.

        A busy conversation (or a burst after an outage) then costs one commit for the lot instead of one
        each.  Routing still sees each message after the previous one's effects (same session), so the
        outcome is the same as one by one.  If anything fails, nothing of the batch is applied and the
        caller handles the messages one at a time, where a failing message is retried and, in the end,
        handed to a person without holding up the others.  Returns whether the lease was released.
        """
        parsed = await asyncio.gather(*(self._parse(m.text) for m in messages))
        outcomes: list[_Outcome] = []
        async with self.db.transaction() as session:
            for index, (message, result) in enumerate(zip(messages, parsed)):
                last = index == len(messages) - 1
                outcomes.append(await self._apply_in(session, message, result, release_if_done=last))
        self._after_commit(outcomes)
        return outcomes[-1].released

    async def _apply_in(
        self, session: AsyncSession, message: Message, parse: tuple[ParseResult | None, str], *, release_if_done: bool
    ) -> _Outcome:
        assert message.id is not None
        parsed, error = parse
        conversation = await inbox.conversation_for_update_in(session, message.conversation_id)
        if message.ticket_id is None and conversation.status in (ConversationStatus.queued, ConversationStatus.agent):
            await attach_to_open_ticket_in(session, message.id, conversation.id)
        category = None if parsed is None else self.config.taxonomy.category(parsed.intent)
        nlu = None if parsed is None else {
            "intent": parsed.intent, "confidence": parsed.confidence, "category": category,
            "entities": [_entity_dict(e) for e in parsed.entities],
        }
        incoming = Incoming(
            message_id=message.id,
            text=message.text,
            conversation_kind=conversation.kind.value,
            status=conversation.status.value,
            now=self.clock(),
            nlu=parsed,
            nlu_error=error,
            bot_state=dict(conversation.bot_state),
            from_third_party=message.contact_id is not None and message.contact_id != conversation.contact_id,
            # Only event messages look at them (cancelling "my" registration): spare the query otherwise.
            registrations=(
                await registered_events_in(session, conversation.contact_id)
                if category == "event" else frozenset()
            ),
            # A public reply names the customer (no two customers get the same text: X refuses repeats).
            customer_handle=await _handle_of(session, conversation),
        )
        decision = route(incoming, self.content, self.config)
        if self.content.tags.needs_handle and not incoming.customer_handle and lands_on_ticket(decision, incoming):
            # A tag rule names handles (content/tags.yml): only a message that lands on a ticket needs the
            # contact's handle, so the bot's everyday answer spares the query and routes once.
            incoming = dataclasses.replace(
                incoming, contact_handle=await _handle_of(session, conversation, any_kind=True)
            )
            decision = route(incoming, self.content, self.config)
        applied = await apply_decision_in(session, conversation, message.id, decision)
        # Marked handled, and the lease released when nothing else waits: the release writes the
        # conversation's changes in the same UPDATE (one write of the row per message, not two), and on
        # PostgreSQL the mark and the release are one statement.
        released = await inbox.finish_message_in(
            session, conversation, message.id, nlu=nlu, release_owner=self.owner if release_if_done else None
        )
        return _Outcome(message, parsed, decision, released, applied)

    def _after_commit(self, outcomes: list[_Outcome]) -> None:
        """Committed: only now count the messages and wake the outbox."""
        for outcome in outcomes:
            self.stats.replied += outcome.applied.replied
            self.stats.escalated += outcome.applied.escalated
            category = self.config.taxonomy.category(outcome.parsed.intent) if outcome.parsed is not None else None
            metrics.message_received(_channel_name(outcome.message), category)
            self.stats.handled += 1
            rule = outcome.decision.rule
            self.stats.rules[rule] = self.stats.rules.get(rule, 0) + 1
            log.info("message %s (conversation %s): %s", outcome.message.id, outcome.message.conversation_id, rule)
        if any(o.applied.queued_outbound for o in outcomes) and self.on_outbound is not None:
            self.on_outbound()
        if any(o.applied.escalated for o in outcomes) and self.on_escalated is not None:
            self.on_escalated()

    async def _parse(self, text: str) -> tuple[ParseResult | None, str]:
        if not text.strip():
            return None, "empty message"
        if consent_words(text, self.content.words) is not None:
            return None, "a consent word (stop / keep me posted): decided without the NLU"
        try:
            async with self._nlu_slots:  # backlogs parse in parallel, but never flood the NLU server
                with metrics.nlu_timer():
                    return await self.nlu.parse(text), ""
        except NLUError as exc:
            self.stats.nlu_failures += 1
            log.warning("NLU failed, escalating the message instead: %s", exc)
            return None, str(exc)


async def _handle_of(session: AsyncSession, conversation: Conversation, *, any_kind: bool = False) -> str:
    """The customer's username, for public conversations only (a DM needs no name: spare the query), or
    `any_kind` (the tag rules look at handles)."""
    if conversation.kind != ConversationKind.public and not any_kind:
        return ""
    contact = await session.get(Contact, conversation.contact_id)  # the escalation reads it from the session
    return contact.handle if contact is not None else ""


def _channel_name(message: Message) -> str:
    return str(getattr(message.channel, "value", message.channel))


def _entity_dict(entity: Any) -> dict[str, Any]:
    return {"entity": entity.entity, "value": entity.value, "start": entity.start, "end": entity.end}
