"""The agents' pager: escalations posted to an agents' Telegram group, and worked from there.

    new escalation ──▶ a card in the group (queue, priority, customer, last messages, [Claim])
    press Claim     ──▶ storage.actions.claim; the card shows the holder; a late presser is told who has it
    reply to a card ──▶ agent_reply (the customer gets it on their channel, X or Telegram)
    /note TEXT, /handback, /resolve, /claim as a reply to a card ──▶ add_note / hand_back / resolve / claim
    /away, /back (anywhere in the group) ──▶ set_away: no new automatic assignments / available again
    a ticket assigned automatically ──▶ the card names the holder, and a message under it tells them

Every linked agent's update counts as being online for automatic assignment (storage/assignment.py).

Only Telegram users linked to an active agent (`frontdesk agents link-telegram`) may act; anyone else gets
a short refusal and nothing changes.

SLA warnings and breaches (bot/sla_sweeper.py writes them as `sla_warning` / `sla_breach` events) are posted
as replies to the ticket's card.

How escalations reach the pager: it polls the store's audit trail (``ticket_events``) rather than being
called by the router.  That works whichever process escalated (the bot worker, the desk, a second
machine), survives restarts (the last event seen is a persisted cursor), and also brings changes made
elsewhere (claimed or resolved in the desk) to the card.  Ids of rows committed out of order on
PostgreSQL are caught by re-reading the last two minutes each pass; cards already posted are never posted
twice (which ticket has which card is kept in the store, see `_CardMap`).  `wake()` makes it look now.

Customers' follow-ups on a carded, open ticket are posted as replies to its card, so whoever holds it
in Telegram sees them.

Spike alerts (docs/incidents.md) reach the pager the same way: it reads new rows of ``alerts`` after a
persisted cursor and posts each once, with the desk link that opens an incident from it.

Run one pager per agents' chat: two would both post every card.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlmodel import col
from telegram import Bot, CallbackQuery, ReplyParameters, Update
from telegram import Message as TgMessage
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.channels.telegram.client import retry_after_seconds
from bot.channels.telegram.flood import FloodControl
from bot.channels.telegram.pager_view import keyboard, load_card, render, ticket_from_claim_data
from storage import actions, saved_replies
from storage.actions.csat import CsatPolicy
from storage.agents import agent_for_telegram_user
from storage.assignment import seen
from storage.cursors import get_cursor, set_cursor
from storage.db import Database
from storage.errors import AlreadyClaimed, InvalidText, InvalidTransition, NotAllowed, NotFound
from storage.incidents import alert_title, alerts_after, newest_alert_id
from storage.models import (
    Agent,
    Author,
    Contact,
    Direction,
    Message,
    MessageKind,
    Ticket,
    TicketEvent,
    utcnow,
)

log = logging.getLogger("frontdesk.telegram.pager")

SLA_EVENTS = ("sla_warning", "sla_breach")  # written by bot/sla_sweeper.py, posted as replies to the card
WATCHED_EVENTS = ("escalated", "claimed", "assigned", "reassigned", "resolved", "handed_back", *SLA_EVENTS)
LOOKBACK = timedelta(minutes=2)
_SEEN_MEMORY = 5_000

NOT_LINKED = (
    "Sorry, only Frontdesk agents can work tickets here. An admin can link you with "
    "`frontdesk agents link-telegram EMAIL {user_id}`."
)
HELP = ("Reply to a ticket's message: plain text goes to the customer; /reply NAME sends a saved reply; "
        "/note TEXT adds an internal note; /handback gives the conversation back to the bot; "
        "/resolve closes the ticket. Anywhere here: /away stops automatic assignment to you, /back resumes it.")
AWAY = ("🌙 {name}, you are away: no new tickets are assigned to you; the ones you hold stay yours. "
        "Send /back when you return.")
BACK = "👋 Welcome back, {name}: automatic assignment may give you tickets again."
ASSIGNED = "📌 {name}, ticket #{ticket_id} is yours (assigned automatically). Reply to its card to answer."


class _CardMap:
    """Which group message is which ticket's card, in the store's key-value cursors (no schema change,
    shared by every process, kept across restarts)."""

    def __init__(self, db: Database, chat_id: int) -> None:
        self.db = db
        self.chat_id = chat_id

    async def message_for(self, ticket_id: int) -> int | None:
        found = await self.card_of(ticket_id)
        return found[0] if found else None

    async def card_of(self, ticket_id: int) -> tuple[int, int] | None:
        """(card message id, newest ticket message id the card showed when posted)."""
        value = await get_cursor(self.db, f"telegram-pager:{self.chat_id}:ticket:{ticket_id}")
        if not value:
            return None
        message_id, _, shown = value.partition(":")
        return int(message_id), int(shown or 0)

    async def ticket_for(self, message_id: int) -> int | None:
        value = await get_cursor(self.db, f"telegram-pager:{self.chat_id}:message:{message_id}")
        return int(value) if value else None

    async def remember(self, ticket_id: int, message_id: int, shown_up_to: int) -> None:
        await set_cursor(self.db, f"telegram-pager:{self.chat_id}:message:{message_id}", str(ticket_id))
        await set_cursor(self.db, f"telegram-pager:{self.chat_id}:ticket:{ticket_id}", f"{message_id}:{shown_up_to}")


_MAX_REPLY_PACING_S = 5.0


class _Seen:
    """Ids already dealt with, for the look-back re-reads (bounded)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, key: int) -> bool:
        return key in self._ids

    def add(self, key: int) -> None:
        if key not in self._ids:
            self._ids.add(key)
            self._order.append(key)
            while len(self._order) > _SEEN_MEMORY:
                self._ids.discard(self._order.popleft())


class TelegramPager:
    """Posts and updates ticket cards in `chat_id`, and handles what agents do there.

    ``await start()`` / ``await stop()`` run the store watcher; `handle(update)` is called by the update
    dispatcher for every update (True when it was the pager's).
    """

    def __init__(self, bot: Bot, db: Database, chat_id: int, *, poll_s: float = 2.0,
                 flood: FloodControl | None = None, csat: CsatPolicy | None = None, desk_url: str = "") -> None:
        self.bot = bot
        self.csat = csat  # the satisfaction question asked on /resolve (FRONTDESK_CSAT_*)
        self.db = db
        self.chat_id = chat_id
        # Shared with the sender: the group's 20 messages a minute, and the bot's 30 a second, are counted
        # across both (bot/channels/telegram/flood.py).
        self.flood = flood or FloodControl()
        self.poll_s = poll_s
        self.cards = _CardMap(db, chat_id)
        self._event_cursor_name = f"telegram-pager:{chat_id}:last_event_id"
        self._message_cursor_name = f"telegram-pager:{chat_id}:last_message_id"
        self._alert_cursor_name = f"telegram-pager:{chat_id}:last_alert_id"
        self.desk_url = desk_url.rstrip("/")
        self._events_seen = _Seen()
        self._messages_seen = _Seen()
        self._relay_primed = False
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one pass at a time (the loop and explicit sync() calls)

    # ------------------------------------------------------------------ the store watcher
    def wake(self) -> None:
        """Look at the store now (e.g. right after an escalation in this process)."""
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-pager")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                self.flood.penalise(self.chat_id, retry_after_seconds(exc))
                await asyncio.sleep(retry_after_seconds(exc))
            except (BadRequest, Forbidden) as exc:
                # Nothing is skipped: the cards wait until the bot can post in the group again.
                log.error("telegram pager: cannot post in chat %s (%s); add the bot to the agents' group "
                          "or fix FRONTDESK_TELEGRAM_AGENTS_CHAT", self.chat_id, exc.message)
            except Exception:
                log.exception("telegram pager: pass failed; retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.poll_s)

    async def sync(self) -> None:
        """One pass: post cards for new escalations, refresh cards whose ticket changed, relay follow-ups."""
        async with self._lock:
            await self._sync_events()
            await self._relay_customer_messages()
            await self._post_alerts()

    async def _sync_events(self) -> None:
        cursor = await get_cursor(self.db, self._event_cursor_name)
        if cursor is None:
            await self._first_start()
            return
        last = int(cursor)
        since = utcnow() - LOOKBACK
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(col(TicketEvent.id), col(TicketEvent.ticket_id), col(TicketEvent.action),
                           col(TicketEvent.detail))
                    .where(
                        col(TicketEvent.action).in_(WATCHED_EVENTS),
                        or_(col(TicketEvent.id) > last, col(TicketEvent.created_at) >= since),
                    )
                    .order_by(col(TicketEvent.id))
                )
            ).all()
        newest = last
        for event_id, ticket_id, action, detail in rows:
            if event_id in self._events_seen:
                continue
            if action in SLA_EVENTS:
                await self.post_sla_alert(event_id, ticket_id, action, detail or {})
            elif action == "escalated":
                await self.post_card(ticket_id)
            elif action == "assigned":
                await self.tell_assigned(ticket_id, str((detail or {}).get("agent_name") or "an agent"))
            else:
                await self.refresh_card(ticket_id)
            self._events_seen.add(event_id)
            if event_id > newest:
                newest = event_id
                await set_cursor(self.db, self._event_cursor_name, str(newest))

    async def _first_start(self) -> None:
        """No cursor yet: card every ticket still waiting or held, not the whole history."""
        async with self.db.session() as session:
            found = await session.execute(
                select(col(Ticket.id)).where(col(Ticket.open_conversation_id).is_not(None)).order_by(col(Ticket.id))
            )
            open_ids = [ticket_id for ticket_id in found.scalars().all() if ticket_id is not None]
            newest_event = (await session.execute(select(func.max(TicketEvent.id)))).scalar_one_or_none() or 0
            newest_message = (await session.execute(select(func.max(Message.id)))).scalar_one_or_none() or 0
        for ticket_id in open_ids:
            await self.post_card(ticket_id)
        if await get_cursor(self.db, self._message_cursor_name) is None:
            await set_cursor(self.db, self._message_cursor_name, str(newest_message))
        await set_cursor(self.db, self._event_cursor_name, str(newest_event))

    async def post_card(self, ticket_id: int) -> int | None:
        """Post the ticket's card unless it has one; returns the card's message id."""
        existing = await self.cards.message_for(ticket_id)
        if existing is not None:
            await self.refresh_card(ticket_id)
            return existing
        card = await load_card(self.db, ticket_id)
        if card is None or not card.status.is_open:
            return None
        await self.flood.acquire(self.chat_id)
        sent = await self.bot.send_message(self.chat_id, render(card), reply_markup=keyboard(card))
        await self.cards.remember(ticket_id, sent.message_id, card.last_message_id)
        log.info("telegram pager: ticket %s posted as message %s", ticket_id, sent.message_id)
        return sent.message_id

    async def post_sla_alert(self, event_id: int, ticket_id: int, action: str, detail: dict[str, object]) -> None:
        """An SLA warning or breach, as a reply to the ticket's card (alone if it has none).  Posted once:
        which alerts went out is kept in the store, as the cards are, since the look-back re-reads events."""
        posted = f"telegram-pager:{self.chat_id}:sla:{event_id}"
        if await get_cursor(self.db, posted):
            return
        metric = str(detail.get("metric", "")).replace("_", " ")
        async with self.db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            return
        where = f"ticket #{ticket_id} ({ticket.queue.value}, {ticket.priority.name})"
        text = (f"🔴 SLA breached: {metric} on {where}" if action == "sla_breach"
                else f"🟠 SLA warning: {metric} on {where} has used 80% of its time")
        card = await self.cards.message_for(ticket_id)
        await self.flood.acquire(self.chat_id)
        await self.bot.send_message(
            self.chat_id, text,
            reply_parameters=ReplyParameters(card, allow_sending_without_reply=True) if card is not None else None,
        )
        await set_cursor(self.db, posted, "1")

    async def refresh_card(self, ticket_id: int) -> None:
        """Make the card show the ticket as it is now (holder, status, buttons)."""
        message_id = await self.cards.message_for(ticket_id)
        card = await load_card(self.db, ticket_id)
        if message_id is None or card is None:
            return
        try:
            await self.bot.edit_message_text(
                render(card), chat_id=self.chat_id, message_id=message_id, reply_markup=keyboard(card)
            )
        except BadRequest as exc:
            # "message is not modified" (already up to date) or the card was deleted: nothing to do.
            log.debug("telegram pager: card of ticket %s not edited: %s", ticket_id, exc.message)

    async def tell_assigned(self, ticket_id: int, agent_name: str) -> None:
        """The card shows the new holder, and a message under it tells them the ticket is theirs."""
        card_id = await self.post_card(ticket_id)  # refreshes the card when it exists
        if card_id is None:
            return  # closed before we looked: nothing to tell
        await self.flood.acquire(self.chat_id)
        await self.bot.send_message(
            self.chat_id, ASSIGNED.format(name=agent_name, ticket_id=ticket_id),
            reply_parameters=ReplyParameters(card_id, allow_sending_without_reply=True),
        )

    async def _relay_customer_messages(self) -> None:
        cursor = await get_cursor(self.db, self._message_cursor_name)
        if cursor is None:
            return
        last = int(cursor)
        since = utcnow() - LOOKBACK
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(col(Message.id), col(Message.ticket_id), col(Message.text), col(Contact.handle),
                           col(Contact.display_name))
                    .join(Ticket, col(Ticket.id) == col(Message.ticket_id))
                    .join(Contact, col(Contact.id) == col(Ticket.contact_id))
                    .where(
                        col(Message.direction) == Direction.inbound,
                        col(Message.author) == Author.customer,
                        col(Message.kind) == MessageKind.message,
                        col(Ticket.open_conversation_id).is_not(None),
                        or_(col(Message.id) > last, col(Message.created_at) >= since),
                    )
                    .order_by(col(Message.id))
                )
            ).all()
        if not self._relay_primed:
            # A restart: what is at or below the cursor was relayed by the previous process.
            for row in rows:
                if row[0] <= last:
                    self._messages_seen.add(row[0])
            self._relay_primed = True
        newest = last
        for message_id, ticket_id, text, handle, name in rows:
            if message_id in self._messages_seen:
                continue
            card = await self.cards.card_of(ticket_id)
            if card is not None and message_id > card[1]:  # not already shown on the card itself
                await self.flood.acquire(self.chat_id)
                await self.bot.send_message(
                    self.chat_id,
                    f"💬 {handle or name or 'customer'} (ticket #{ticket_id}): {text}"[:4096],
                    reply_parameters=ReplyParameters(card[0], allow_sending_without_reply=True),
                )
            self._messages_seen.add(message_id)
            if message_id > newest:
                newest = message_id
                await set_cursor(self.db, self._message_cursor_name, str(newest))

    async def _post_alerts(self) -> None:
        """Each new spike alert once, oldest first; on first start, none of the past ones."""
        cursor = await get_cursor(self.db, self._alert_cursor_name)
        if cursor is None:
            await set_cursor(self.db, self._alert_cursor_name, str(await newest_alert_id(self.db)))
            return
        for alert in await alerts_after(self.db, int(cursor)):
            link = f"{self.desk_url}/incidents/new?alert={alert.id}"
            await self.flood.acquire(self.chat_id)
            await self.bot.send_message(
                self.chat_id,
                f"🚨 Spike: {alert_title(alert)}: {alert.count} messages this window "
                f"(usually {alert.baseline:g}). Open an incident in the desk: {link}",
            )
            await set_cursor(self.db, self._alert_cursor_name, str(alert.id))

    # ------------------------------------------------------------------ what agents do in the group
    async def handle(self, update: Update) -> bool:
        """Handle a button press or a message in the agents' chat; False for anything else."""
        if update.callback_query is not None:
            ticket_id = ticket_from_claim_data(update.callback_query.data)
            if ticket_id is None:
                return False
            await self._on_claim(update.callback_query, ticket_id)
            return True
        message = update.message
        if message is None or message.chat.id != self.chat_id:
            return False
        await self._on_group_message(message)
        return True

    async def _on_claim(self, query: CallbackQuery, ticket_id: int) -> None:
        agent = await agent_for_telegram_user(self.db, query.from_user.id)
        if agent is None:
            await self._answer(query, NOT_LINKED.format(user_id=query.from_user.id), alert=True)
            return
        await self._here(agent)
        try:
            await actions.claim(self.db, ticket_id, agent.id)  # type: ignore[arg-type]
        except AlreadyClaimed as exc:
            await self._answer(query, f"Ticket #{ticket_id} is already held by {exc.holder}.", alert=True)
        except (InvalidTransition, NotAllowed, NotFound) as exc:
            await self._answer(query, f"Ticket #{ticket_id}: {exc}", alert=True)
        else:
            await self._answer(query, f"Ticket #{ticket_id} is yours, {agent.name}. Reply to its message to answer.")
        await self.refresh_card(ticket_id)

    async def _on_group_message(self, message: TgMessage) -> None:
        text = (message.text or "").strip()
        if _command(text) in ("/away", "/back"):
            await self._away_or_back(message, _command(text) == "/away")
            return
        replied = message.reply_to_message
        ticket_id = None
        if replied is not None and replied.from_user is not None and replied.from_user.id == self.bot.id:
            ticket_id = await self.cards.ticket_for(replied.message_id)
        if ticket_id is None:
            if text.startswith("/"):
                await self._reply(message, HELP)
            return  # the agents' own chatter
        if message.from_user is None:
            return
        agent = await agent_for_telegram_user(self.db, message.from_user.id)
        if agent is None:
            await self._reply(message, NOT_LINKED.format(user_id=message.from_user.id))
            return
        await self._here(agent)
        try:
            answer = await self._act(ticket_id, agent, text)
        except AlreadyClaimed as exc:
            answer = f"Ticket #{ticket_id} is already held by {exc.holder}."
        except InvalidTransition as exc:
            hint = " Press Claim first." if exc.current_state == "queued" else ""
            answer = f"Ticket #{ticket_id}: {exc}.{hint}"
        except (NotAllowed, InvalidText, NotFound) as exc:
            answer = f"Ticket #{ticket_id}: {exc}"
        await self._reply(message, answer)

    async def _away_or_back(self, message: TgMessage, away: bool) -> None:
        agent = await agent_for_telegram_user(self.db, message.from_user.id) if message.from_user else None
        if agent is None or agent.id is None:
            user_id = message.from_user.id if message.from_user else 0
            await self._reply(message, NOT_LINKED.format(user_id=user_id))
            return
        await actions.set_away(self.db, agent.id, away)
        await self._reply(message, (AWAY if away else BACK).format(name=agent.name))

    async def _here(self, agent: Agent) -> None:
        """A linked agent used the pager: online for automatic assignment (one write per 30 s at most)."""
        assert agent.id is not None
        try:
            await seen(self.db, agent.id)
        except Exception:  # noqa: BLE001 - presence is best effort; the agent's action goes on
            log.warning("telegram pager: could not record that agent %s is online", agent.id, exc_info=True)

    async def _act(self, ticket_id: int, agent: Agent, text: str) -> str:
        assert agent.id is not None
        command, _, rest = text.partition(" ")
        command = command.split("@", 1)[0].lower() if command.startswith("/") else ""
        rest = rest.strip()
        if not command:
            if not text:
                return "Only text can be sent to the customer from here."
            await actions.agent_reply(self.db, ticket_id, agent.id, text)
            return "✓ On its way to the customer."
        if command == "/note":
            if not rest:
                return "Write the note after the command: /note TEXT"
            await actions.add_note(self.db, ticket_id, agent.id, rest)
            return "📝 Note added."
        if command == "/reply":
            return await self._saved_reply(ticket_id, agent, rest)
        if command == "/claim":
            await actions.claim(self.db, ticket_id, agent.id)
            await self.refresh_card(ticket_id)
            return f"Ticket #{ticket_id} is yours."
        if command == "/handback":
            await actions.hand_back(self.db, ticket_id, agent.id)
            await self.refresh_card(ticket_id)
            return "↩️ Handed back to the bot."
        if command == "/resolve":
            await actions.resolve(self.db, ticket_id, agent.id, csat=self.csat)
            await self.refresh_card(ticket_id)
            return "✅ Resolved."
        return HELP

    async def _saved_reply(self, ticket_id: int, agent: Agent, name: str) -> str:
        """`/reply NAME`: send a saved reply, filled in for this ticket; never one with a gap left in it."""
        assert agent.id is not None
        if not name:
            return "Name the saved reply after the command: /reply NAME (the desk lists them under Saved replies)"
        try:
            text, unfilled = await saved_replies.reply_for_ticket(self.db, ticket_id, name, agent_name=agent.name)
        except NotFound as exc:
            if exc.what != "Saved reply":
                raise
            return f"There is no saved reply /{name} for this ticket's queue (the desk lists them under Saved replies)."
        if unfilled:
            gaps = ", ".join("{" + n + "}" for n in unfilled)
            return f"/{name} needs {gaps}, which the pager cannot fill: send it from the desk, or write the reply."
        await actions.agent_reply(self.db, ticket_id, agent.id, text)
        return f"✓ /{name} is on its way to the customer."

    async def _answer(self, query: CallbackQuery, text: str, *, alert: bool = False) -> None:
        try:
            await query.answer(text=text[:200], show_alert=alert)
        except TelegramError as exc:  # the query expired (we were slow or restarting); nothing else to do
            log.info("telegram pager: could not answer a button press: %s", exc)

    async def _reply(self, message: TgMessage, text: str) -> None:
        # Paced with the cards, but the update stream is not held for long: past a few seconds (the
        # group's 20 a minute used up) it is tried anyway, and a 429 is only logged: the action is done.
        await self.flood.acquire(message.chat_id, max_wait_s=_MAX_REPLY_PACING_S)
        try:
            await message.reply_text(text, do_quote=True)
        except TelegramError as exc:
            log.warning("telegram pager: could not answer in the agents' chat: %s", exc)


def _command(text: str) -> str:
    """`/away@BrandBot later` -> `/away`; "" for plain text."""
    if not text.startswith("/"):
        return ""
    return text.split(None, 1)[0].split("@", 1)[0].lower()
