"""The bot's decisions: what to do with one customer message, as data.

`route()` is a pure function of (conversation status, what the bot remembers, the NLU result, the text,
the content catalogue, the clock): it returns a short list of effects and does no I/O, so every rule of
the bot reads here in one place and is tested without servers.  `bot/effects.py` applies the effects
through `storage.actions`.

The rules, in the order they are checked:

0. Consent, before anything else and without the NLU: "stop" / "unsubscribe" opts out of announcements,
   "keep me posted" / "subscribe" opts in (`opt_out` / `opt_in` in content/words.yml); confirmed once,
   except while an agent holds the conversation (recorded, the bot stays silent).
1. `agent`: silence.  A third party writing in a customer's public thread: silence (the desk shows it
   marked; the bot never acts on a stranger's words for the customer).  `queued`: silence, except one
   "you're in the queue" note per ticket.  After "How did we do? 1–5" (a resolved ticket): a score is
   recorded and thanked instead of routed; anything else goes on through these rules and the question lapses.
2. NLU unavailable: escalate by the taxonomy's fallback route (`general`) with the reason (never lost).
3. Follow-ups the bot asked for: "that didn't help" after an FAQ answer, the sales lead details (added
   to the open sales ticket, also while it is queued), which event to register for or cancel, "yes"/"no"
   to a confirmation.
4. Unsure (category confidence or margin below the thresholds): a person if they asked for one; an FAQ
   phrase for one of the top intents; else ask to rephrase once, then escalate.  Category `other`: the
   FAQ, else the same question.
5. By category: support (FAQ or escalate; public mentions get one reply inviting a DM), sales (a sales
   ticket at once, asking once for missing lead details), event (answer from the catalogue, register
   only an event the words identify, else confirm; cancel; unknown events to the events queue), human
   (escalate now), smalltalk (a short reply, no ticket; a problem in friendly words is support).
6. Whatever decided: when the message ends up on a ticket, the tag rules (`content/tags.yml`, bot/tags.py)
   add their tags to it (`TagTicket`), e.g. `vip` for a key account, `order` for an order number.

Category, queue and priority come from the taxonomy (`RouterConfig.taxonomy`, `content/taxonomy.yml`):
a ticket goes to the queue of the message's intent at the intent's priority (`_Ctx.route_for`), and the
rules only ever raise that priority (anger or a complaint: high; asking for a person: at least high).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot import replies
from bot.content import Content, Event, FAQEntry, shipped_words
from bot.event_match import Identified, identify
from bot.taxonomy import IntentRoute, Taxonomy, load_taxonomy
from bot.words import Words
from frontdesk.core.business_hours import BusinessHours, parse_business_hours
from frontdesk.core.vocabulary import Priority
from nlu.client import ParseResult
from storage.actions.csat import STATE_KEY as CSAT_STATE_KEY
from storage.actions.csat import awaiting as csat_awaiting

# --- inputs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterConfig:
    # Act on the NLU's category only when the category's confidence (the sum of its intents' scores in
    # the ranking) reaches `confidence_threshold` AND leads the next category by `margin_threshold`;
    # otherwise ask once.  Chosen on the dev sets with `frontdesk eval decisions` (docs/bot.md).
    confidence_threshold: float = 0.9
    margin_threshold: float = 0.0
    brand_user_id: str = ""  # X's numeric id of the brand account, for the DM deep link
    hours: BusinessHours = field(default_factory=lambda: parse_business_hours(""))
    # What each intent means (category, queue, priority); default: the shipped content/taxonomy.yml.
    taxonomy: Taxonomy = field(default_factory=load_taxonomy)


@dataclass(frozen=True)
class Incoming:
    """One customer message and everything the decision depends on."""

    message_id: int
    text: str
    conversation_kind: str  # "dm" | "public" | "telegram"
    status: str  # the conversation's status: bot | queued | agent | resolved
    now: datetime
    nlu: ParseResult | None = None
    nlu_error: str = ""  # why `nlu` is None
    bot_state: dict[str, Any] = field(default_factory=dict)
    registrations: frozenset[str] = frozenset()  # event keys this contact is registered for
    # Written by someone other than the conversation's customer (a stranger replying in their public
    # thread): the bot must not act on it for the customer (register them, read it as their answer).
    from_third_party: bool = False
    customer_handle: str = ""  # the conversation's customer (X username): public replies name them
    # The customer's handle on any channel, for the tag rules (content/tags.yml); read only when a rule
    # looks at handles.  Never used in a reply (DMs do not name the customer).
    contact_handle: str = ""

    @property
    def public(self) -> bool:
        return self.conversation_kind == "public"


# --- effects ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    text: str
    # The category the answer is meant for ("support" for a support FAQ answer, "event", "smalltalk", …);
    # "" for a neutral question ("could you say it in other words?").  `frontdesk eval decisions` reads it.
    meant_for: str = ""


@dataclass(frozen=True)
class QueueNotice:
    text: str


@dataclass(frozen=True)
class Escalate:
    queue: str
    priority: str
    category: str
    subject: str
    reason: str
    notice: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AddToTicket:
    """Add to the conversation's open ticket (queued: the store guarantees one): merge `data`, no notice.
    `queue` / `category`: where a ticket would open were it closed meanwhile (the lead is never lost)."""

    queue: str
    category: str
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Register:
    """Register the customer; the store decides the outcome (new, already, full) and bot/effects.py phrases it."""

    event: Event
    voice: replies.Voice = field(default_factory=replies.Voice)  # how bot/effects.py phrases the outcome


@dataclass(frozen=True)
class CancelRegistration:
    event: Event
    voice: replies.Voice = field(default_factory=replies.Voice)


@dataclass(frozen=True)
class UpdateState:
    changes: dict[str, Any]  # None deletes a key


@dataclass(frozen=True)
class TagTicket:
    """Tag the conversation's open ticket by the rules of content/tags.yml (the store skips tags it has)."""

    tags: tuple[str, ...]


@dataclass(frozen=True)
class RecordCsat:
    """The customer's answer to "how did we do?": stored on the ticket's question, then `thanks` is said
    (where it can be: a public thanks X would refuse is left unsaid, never turned into a ticket)."""

    ticket_id: int
    score: int
    comment: str
    thanks: str



@dataclass(frozen=True)
class OptOut:
    """No more announcements for this contact; the store says whether it is new, and only then is it
    confirmed (`confirm` False: recorded silently, an agent holds the conversation)."""

    voice: replies.Voice = field(default_factory=replies.Voice)
    confirm: bool = True


@dataclass(frozen=True)
class OptIn:
    """The contact asked to be kept posted; confirmed when new (as `OptOut`)."""

    voice: replies.Voice = field(default_factory=replies.Voice)
    confirm: bool = True



Effect = (
    Reply | QueueNotice | Escalate | AddToTicket | Register | CancelRegistration | UpdateState | TagTicket | RecordCsat
    | OptOut | OptIn
)


@dataclass(frozen=True)
class Decision:
    effects: list[Effect]
    rule: str  # which rule decided, for logs and tests

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]


# Keys the bot keeps in Conversation.bot_state during a round.
_ROUND_KEYS = (
    "rephrase_asked", "unclear_guess", "faq_answered", "lead", "lead_asked", "awaiting_event", "offered_events",
    "confirm_event",
)



# --- the decision -------------------------------------------------------------------------------------------


def route(msg: Incoming, content: Content, config: RouterConfig) -> Decision:
    return _tagged(_route(msg, content, config), msg, content, config)


def lands_on_ticket(decision: Decision, msg: Incoming) -> bool:
    """The message ends up on a ticket: escalated, added to one, or the conversation is queued or held."""
    return msg.status in ("queued", "agent") or bool(decision.of(Escalate) or decision.of(AddToTicket))


def _tagged(decision: Decision, msg: Incoming, content: Content, config: RouterConfig) -> Decision:
    """When the message ends up on a ticket (escalated, added to one, or the conversation is already
    queued or held), the tag rules of content/tags.yml tag that ticket.  A stranger's words tag nothing."""
    if not content.tags.rules or not lands_on_ticket(decision, msg) or msg.from_third_party:
        return decision
    nlu = msg.nlu
    tags = content.tags.tags_for(
        handle=msg.contact_handle or msg.customer_handle,
        entities=[e.entity for e in nlu.entities] if nlu else [],
        category=config.taxonomy.category(nlu.intent) if nlu else None,
        intent=nlu.intent if nlu else None,
        angry=content.words.is_angry(msg.text),
    )
    if not tags:
        return decision
    return Decision([*decision.effects, TagTicket(tags)], decision.rule)


def _route(msg: Incoming, content: Content, config: RouterConfig) -> Decision:
    consent = _consent(msg, content, config)
    if consent is not None:
        return consent
    if msg.status == "agent":
        return Decision([], "agent holds the conversation: silent")
    if msg.from_third_party:
        return Decision([], "a third party in the customer's thread: no bot action (agents see it marked)")
    if CSAT_STATE_KEY in msg.bot_state:
        return _csat_answer_or_lapse(msg, content, config)
    opening = "" if config.hours.is_open(msg.now) else config.hours.describe_next_opening(msg.now)
    ctx = _Ctx(msg, content, config, opening)
    if msg.status == "queued":
        if ctx.state.get("lead_asked"):
            return _lead_details_while_queued(ctx)
        return Decision([QueueNotice(replies.queue_notice(ctx.voice, opening))], "queued: one queue note per ticket")
    if msg.nlu is None:
        reason = (
            "no text to understand (media only?)" if not msg.text.strip()
            else f"NLU unavailable: {msg.nlu_error or 'no parse'}"
        )
        return ctx.escalate(
            config.taxonomy.fallback, reason,
            notice=_public_or(ctx, replies.public_human, replies.escalated_nlu_down), rule="nlu down: escalate",
        )
    for follow_up in (_faq_did_not_help, _lead_follow_up, _event_choice_follow_up):
        decision = follow_up(ctx)
        if decision is not None:
            return decision
    confidence, margin = category_confidence(msg.nlu, config.taxonomy)
    sure = confidence >= config.confidence_threshold and margin >= config.margin_threshold
    if not sure:
        # Asking a customer who asked for a person to rephrase leaves them without one: when unsure,
        # a message that asks for a person in so many words, or that the NLU reads first as one, gets one.
        if asks_for_person(msg.text, content.words) or ctx.category == "human":
            return _human(ctx)
        return _faq_reply(ctx, unsure=True) or _unclear(ctx)
    if ctx.category not in _BY_CATEGORY:
        return _faq_reply(ctx) or _unclear(ctx)
    return _BY_CATEGORY[ctx.category](ctx)


def _csat_answer_or_lapse(msg: Incoming, content: Content, config: RouterConfig) -> Decision:
    """The message after "How did we do? Reply 1–5": a score is recorded and thanked, not routed; anything
    else is routed as any message would be, and the question lapses (it is never asked again for it)."""
    ticket_id = csat_awaiting(msg.bot_state, msg.now)
    answer = csat_score(msg.text, content.words) if ticket_id is not None else None
    if ticket_id is not None and answer is not None:
        voice = replies.Voice(content.texts, msg.public, msg.customer_handle, msg.message_id, config.brand_user_id)
        return Decision(
            [RecordCsat(ticket_id, answer[0], answer[1], replies.csat_thanks(voice)),
             UpdateState({CSAT_STATE_KEY: None, "last_message_id": msg.message_id})],
            f"csat: score {answer[0]} recorded for ticket {ticket_id}",
        )
    rest = {k: v for k, v in msg.bot_state.items() if k != CSAT_STATE_KEY}
    decision = _route(replace(msg, bot_state=rest), content, config)  # route() tags the result once
    return Decision([*decision.effects, UpdateState({CSAT_STATE_KEY: None})], f"{decision.rule} (CSAT question lapsed)")


_MENTIONS = re.compile(r"^(?:\s*@\w+[,:]?)+")
# "4", "5/5", "4 out of 5", "4 - quick and kind", "5 great"; not "10", "4.5", "5/10", "2nd", "3 items?"
_DIGIT_SCORE = re.compile(r"^\s*([1-5])(?:\s*(?:/|out of|of)\s*5)?(?![\w/]|[.,]\d)(.*)$", re.S | re.I)
_STARS = re.compile(r"^\s*([⭐★]{1,5})(?![⭐★])(.*)$", re.S)
_COMMENT_LEAD = " \t\n-–—:;,.!)/"


def csat_score(text: str, words: Words | None = None) -> tuple[int, str] | None:
    """The score 1–5 a message begins with, and the rest of its words as the comment; None: not an answer.

    A digit, "N/5", stars, or a score word of `csat_scores` in content/words.yml ("five", "four stars").
    Leading @mentions (a reply in an X thread) are skipped.  A question ("2 items missing?") is not a score.
    """
    body = _MENTIONS.sub("", text.replace("\ufe0f", "")).strip()
    found: tuple[int, str] | None = None
    if m := _DIGIT_SCORE.match(body):
        found = int(m.group(1)), m.group(2)
    elif m := _STARS.match(body):
        found = len(m.group(1)), m.group(2)
    else:
        found = (words or shipped_words()).csat_score_word(body)
    if found is None or "?" in found[1]:
        return None
    return found[0], found[1].strip().lstrip(_COMMENT_LEAD).strip()


def consent_words(text: str, words: Words) -> str | None:
    """"out" for "stop" / "unsubscribe", "in" for "keep me posted" / "subscribe", else None.

    Checked before the NLU (the worker does not parse such a message): the customer's words decide, not
    a guess at their intent.  "Stop" wins when a message says both.
    """
    if words.says_stop(text):
        return "out"
    if words.says_keep_me_posted(text):
        return "in"
    return None


def _consent(msg: Incoming, content: Content, config: RouterConfig) -> Decision | None:
    # A stranger in a customer's public thread speaks for nobody here (rule 1).
    if msg.from_third_party:
        return None
    which = consent_words(msg.text, content.words)
    if which is None:
        return None
    voice = replies.Voice(content.texts, msg.public, msg.customer_handle, msg.message_id, config.brand_user_id)
    confirm = msg.status != "agent"  # the bot stays silent while an agent holds the conversation
    if which == "out":
        return Decision([OptOut(voice, confirm)], "consent: stop, no more announcements")
    return Decision([OptIn(voice, confirm)], "consent: keep me posted")


def asks_for_person(text: str, words: Words | None = None) -> bool:
    """Words that ask for a person ("speak to someone", "a callback", "a real human", "your manager"):
    `person` in content/words.yml."""
    return (words or shipped_words()).asks_for_person(text)


def category_confidence(nlu: ParseResult, taxonomy: Taxonomy) -> tuple[float, float]:
    """How sure the NLU is of the message's *category*, and by how much over the next category.

    The category's confidence is the sum of its intents' scores in the ranking ("how much is it" split
    between `pricing` and `purchase` is still clearly sales); the margin is that minus the best other
    category's sum.  Without a ranking: the top intent's confidence, for both.
    """
    if not nlu.intent_ranking:
        return nlu.confidence, nlu.confidence
    sums: dict[str, float] = {}
    for scored in nlu.intent_ranking:
        category = taxonomy.category(scored.name)
        sums[category] = sums.get(category, 0.0) + scored.confidence
    top = taxonomy.category(nlu.intent)
    confidence = max(sums.get(top, 0.0), nlu.confidence)
    runner_up = max((v for c, v in sums.items() if c != top), default=0.0)
    return confidence, confidence - runner_up


@dataclass
class _Ctx:
    msg: Incoming
    content: Content
    config: RouterConfig
    opening: str  # "" during business hours, else when the desk opens again

    @property
    def nlu(self) -> ParseResult:
        assert self.msg.nlu is not None
        return self.msg.nlu

    @property
    def route(self) -> IntentRoute:
        """The taxonomy's route for the message's intent (the fallback without NLU)."""
        return self.config.taxonomy.route(self.msg.nlu.intent if self.msg.nlu else None)

    @property
    def category(self) -> str:
        return self.route.category

    def route_for(self, category: str) -> IntentRoute:
        """Where a `category` ticket goes: the intent's own route when the message is of that category,
        else the category's (a follow-up such as "that didn't help" is not itself a support intent)."""
        route = self.route
        return route if route.category == category else self.config.taxonomy.category_route(category)

    @property
    def voice(self) -> replies.Voice:
        """Who is answered where: public replies name the customer and vary by message (X refuses repeats)."""
        return replies.Voice(self.content.texts, self.msg.public, self.msg.customer_handle, self.msg.message_id,
                             self.config.brand_user_id)

    @property
    def state(self) -> dict[str, Any]:
        return self.msg.bot_state

    def stamp(self, **changes: Any) -> UpdateState:
        """A state change that also records which message it belongs to (so a retried handler skips it)."""
        return UpdateState({**changes, "last_message_id": self.msg.message_id})

    def escalate(
        self, route: IntentRoute, reason: str, *, notice: str, rule: str, priority: str | None = None,
        category: str | None = None, data: dict[str, Any] | None = None, keep: dict[str, Any] | None = None,
    ) -> Decision:
        """A ticket in `route`'s queue at `route`'s priority, or at `priority` when a rule raises it."""
        payload = {"reason": reason, **(data or {})}
        if self.msg.nlu is not None:
            payload.setdefault("intent", self.msg.nlu.intent)
            payload.setdefault("confidence", round(self.msg.nlu.confidence, 3))
        if self.opening:
            payload["outside_hours"] = True
        subject = " ".join(self.msg.text.split())[:120] or "(empty message)"
        return Decision(
            [
                Escalate(
                    route.queue, _max_priority(route.priority, priority or route.priority),
                    category or route.category, subject, reason, notice, payload,
                ),
                # The round ends with the ticket, except what `keep` carries on (the lead asked for).
                self.stamp(**{**{k: None for k in _ROUND_KEYS}, **(keep or {})}),
            ],
            rule,
        )


def _public_or(ctx: _Ctx, public: Any, private: Any) -> str:
    return (public if ctx.msg.public else private)(ctx.voice, ctx.opening)


# --- follow-ups to what the bot asked ------------------------------------------------------------------------

def _faq_did_not_help(ctx: _Ctx) -> Decision | None:
    faq_key = ctx.state.get("faq_answered")
    if not faq_key or not ctx.content.words.did_not_help(ctx.msg.text):
        return None
    return ctx.escalate(
        ctx.route_for("support"), "the FAQ answer did not help", priority=_support_raise(ctx),
        notice=replies.escalated_support(ctx.voice, ctx.opening), rule="faq did not help: escalate to support",
        data={"faq_answered": faq_key},
    )


def _lead_follow_up(ctx: _Ctx) -> Decision | None:
    """The answer to the lead question when the sales ticket has closed meanwhile (status bot again).

    Whatever the NLU calls it ("reach me at sam@…" reads as ask_human), it is the lead's details; only
    a clear request for a person with no lead detail in it goes by the human rule.
    """
    if not ctx.state.get("lead_asked"):
        return None
    found = {k: v for k, v in extract_lead(ctx.msg.text, ctx.msg.nlu).items() if v}
    if not found and ctx.category == "human" and ctx.nlu.confidence >= ctx.config.confidence_threshold:
        return None
    lead = _merged_lead(ctx, found)
    return _open_sales_ticket(ctx, lead, rule="sales: lead completed after asking once")


def _lead_details_while_queued(ctx: _Ctx) -> Decision:
    """The customer answers the lead question while the sales ticket waits: the same ticket gets it all."""
    found = {k: v for k, v in extract_lead(ctx.msg.text, ctx.msg.nlu).items() if v}
    lead = _merged_lead(ctx, found)
    lead["summary"] = _lead_summary(lead)
    route = ctx.config.taxonomy.category_route("sales")
    return Decision(
        [
            AddToTicket(route.queue, "sales", "lead details added", {"lead": lead}),
            QueueNotice(replies.lead_noted(ctx.voice, ctx.opening)),
            ctx.stamp(lead=lead, lead_asked=None),
        ],
        "sales: lead details added to the sales ticket",
    )


def _merged_lead(ctx: _Ctx, found: dict[str, str]) -> dict[str, Any]:
    lead = {**ctx.state.get("lead", {}), **found}
    lead["details"] = (lead.get("details", "") + " / " + ctx.msg.text).strip(" /")[:500]
    return lead


_ORDINAL = re.compile(r"^\s*(?:#|no\.?\s*|number\s*)?(\d)\s*[.)]?\s*$|\b(first|second|third|fourth)\b", re.I)
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4}


def _event_choice_follow_up(ctx: _Ctx) -> Decision | None:
    action = ctx.state.get("awaiting_event")
    if not action:
        return None
    offered = [e for e in (ctx.content.event(k) for k in ctx.state.get("offered_events") or []) if e]
    if ctx.state.get("confirm_event") and offered:
        if ctx.content.words.says_yes(ctx.msg.text):
            return _register(ctx, offered[0]) if action == "register" else _cancel(ctx, offered[0])
        if ctx.content.words.says_no(ctx.msg.text):
            coming = [e for e in upcoming(ctx.content, ctx.msg.now) if e.key != offered[0].key]
            return _ask_which(ctx, coming, action)
    found = _identified(ctx)
    event = found.best if len(found.candidates) == 1 else None
    event = event or _offered_by_number(ctx)
    if event is None:
        return None  # not an answer to our question: route normally (the question lapses)
    return _register(ctx, event) if action == "register" else _cancel(ctx, event)


def _offered_by_number(ctx: _Ctx) -> Event | None:
    offered = ctx.state.get("offered_events") or []
    match = _ORDINAL.search(ctx.msg.text)
    if not match:
        return None
    number = int(match.group(1)) if match.group(1) else _ORDINALS[match.group(2).lower()]
    if 1 <= number <= len(offered):
        return ctx.content.event(offered[number - 1])
    return None


# --- low confidence ---------------------------------------------------------------------------------------------


def _unclear(ctx: _Ctx) -> Decision:
    if not ctx.state.get("rephrase_asked"):
        text = replies.ask_rephrase(ctx.voice)
        return Decision([Reply(text), ctx.stamp(rephrase_asked=True, unclear_guess=ctx.category)],
                        "unclear: ask to rephrase once")
    # Twice unsure, but both times of the same specialised category (a sales question put two ways):
    # that category's queue, so a lead does not end in the general queue; otherwise the fallback.
    guess = ctx.state.get("unclear_guess")
    if guess == ctx.category and guess in ("support", "sales", "event"):
        route = ctx.route_for(guess)
        rule = f"unclear twice, both {guess}: escalate to {route.queue}"
    else:
        route, rule = ctx.config.taxonomy.fallback, "unclear twice: escalate"
    return ctx.escalate(
        route, "not understood after asking to rephrase",
        category=ctx.category if ctx.category in _BY_CATEGORY else ctx.config.taxonomy.fallback.category,
        notice=_public_or(ctx, replies.public_human, replies.escalated_general), rule=rule,
    )


# --- support --------------------------------------------------------------------------------------------------

def is_angry(text: str, words: Words | None = None) -> bool:
    """Words of anger, "!!!" or shouting (mostly capitals) mark a message for high priority (content/words.yml)."""
    return (words or shipped_words()).is_angry(text)


def _support_raise(ctx: _Ctx) -> str | None:
    """The support rules' raise over the taxonomy's priority: a complaint or anger is at least high."""
    if ctx.msg.nlu and ctx.nlu.intent == "complaint" or is_angry(ctx.msg.text, ctx.content.words):
        return "high"
    return None


def _max_priority(a: str, b: str) -> str:
    return min(a, b, key=lambda p: Priority[p].value if p in Priority.__members__ else 99)


def best_faq(content: Content, intent: str | None, text: str, *, phrases_only: bool = False) -> FAQEntry | None:
    """The FAQ entry for this intent with the most keyword hits in `text` (None: no entry answers it)."""
    scored = [(e.keyword_hits(text, phrases_only=phrases_only), e) for e in content.faq if intent in e.intents]
    scored = [(hits, e) for hits, e in scored if hits > 0]
    if not scored:
        return None
    return max(scored, key=lambda pair: pair[0])[1]


def _faq_reply(ctx: _Ctx, *, unsure: bool = False) -> Decision | None:
    """The FAQ entry for the message's intent whose keywords occur in it, whatever the category
    (pricing, opening hours, shipping…); private conversations only (FAQ answers are never public).

    `unsure` (the NLU is below the thresholds): an entry still answers when it lists one of the top
    three intents and one of its *phrases* ("opening hours": several words, not "open") is in the text.
    """
    if ctx.msg.public:
        return None
    entry, intent = best_faq(ctx.content, ctx.nlu.intent, ctx.msg.text), ctx.nlu.intent
    if unsure:
        entry = None
        for scored in ctx.nlu.intent_ranking[:3]:
            entry = best_faq(ctx.content, scored.name, ctx.msg.text, phrases_only=True)
            if entry is not None:
                intent = scored.name
                break
    if entry is None:
        return None
    category = ctx.config.taxonomy.category(intent)
    return Decision(
        [Reply(replies.faq_answer(ctx.voice, entry.answer), category),
         ctx.stamp(faq_answered=entry.key, rephrase_asked=None)],
        f"{category}: FAQ answer {entry.key}" + (" (unsure of the intent, sure of the phrase)" if unsure else ""),
    )


def _support(ctx: _Ctx, *, friendly_words: bool = False) -> Decision:
    """`friendly_words`: a support message though its intent is not (thanks or praise around a problem)."""
    complaint = ctx.nlu.intent == "complaint" or is_angry(ctx.msg.text, ctx.content.words)
    priority = _support_raise(ctx)
    if friendly_words:
        return ctx.escalate(
            ctx.route_for("support"), "a problem in friendly words", priority=priority,
            notice=_public_or(ctx, lambda v, o: replies.public_invite_dm(v, complaint=complaint, next_opening=o),
                              lambda v, o: replies.escalated_support(v, o, complaint=complaint)),
            rule="support: a problem in friendly words, escalate", data={"source": "smalltalk words"},
        )
    if ctx.msg.public:
        notice = replies.public_invite_dm(ctx.voice, complaint=complaint, next_opening=ctx.opening)
        return ctx.escalate(
            ctx.route_for("support"), "public mention: invited to DM", priority=priority, notice=notice,
            rule="support mention: public reply inviting a DM, ticket", data={"source": "public mention"},
        )
    if not complaint:
        answered = _faq_reply(ctx)
        if answered is not None:
            return answered
    reason = "complaint" if complaint else "no FAQ answer"
    return ctx.escalate(
        ctx.route_for("support"), reason, priority=priority,
        notice=replies.escalated_support(ctx.voice, ctx.opening, complaint=complaint),
        rule=f"support: escalate ({reason})",
    )


# --- sales ----------------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SIZE = re.compile(
    r"\b(?:team of|about|around|~)?\s*(\d[\d,.]*\+?)\s*(?:-?\s*)(?:people|persons|employees|staff|agents|seats|"
    r"users|person team|member|members|reps|licen[cs]es)\b",
    re.IGNORECASE,
)
_COMPANY = re.compile(
    r"\b(?i:at|from|for|with|company is|company called|work at|work for|we are|we're|i'm with|i am with|"
    r"this is|i'm from|i am from)\s+"
    r"((?:[A-Z][\w&'.-]*|[A-Z]{2,})(?:\s+(?:[A-Z][\w&'.-]*|&))*(?:\s+(?:GmbH|Inc\.?|Ltd\.?|LLC|AG|SA|BV))?)"
)
_NOT_COMPANY = {"I", "The", "A", "An", "We", "Our", "My", "It", "Hi", "Hello", "Monday", "Friday", "Frontdesk"}


def extract_lead(text: str, nlu: ParseResult | None) -> dict[str, str]:
    """What a sales message says about the lead: company, team size, email (empty when not given)."""
    lead: dict[str, str] = {"company": "", "size": "", "email": ""}
    if nlu is not None:
        for entity in nlu.entities:
            if entity.entity == "email" and isinstance(entity.value, str):
                lead["email"] = entity.value
            elif entity.entity in ("company", "organization", "org") and isinstance(entity.value, str):
                lead["company"] = entity.value
    if not lead["email"] and (m := _EMAIL.search(text)):
        lead["email"] = m.group(0)
    if m := _SIZE.search(text):
        lead["size"] = m.group(1).rstrip(".,")
    if not lead["company"]:
        for m in _COMPANY.finditer(text):
            name = m.group(1).strip(" .,'")
            if name and name.split()[0] not in _NOT_COMPANY:
                lead["company"] = name
                break
    return lead


def _sales(ctx: _Ctx) -> Decision:
    """A sales ticket at once with what is known; in private, ask once for what is missing.

    The lead never waits on the customer's answer: a prospect who never replies is already in the
    Sales queue, and the answer is added to the same ticket (`_lead_details_while_queued`).
    """
    lead: dict[str, Any] = {k: v for k, v in extract_lead(ctx.msg.text, ctx.nlu).items() if v}
    lead["interest"] = ctx.nlu.intent or "sales"
    lead["details"] = ctx.msg.text[:500]
    if ctx.msg.public:
        lead["summary"] = _lead_summary(lead)
        return ctx.escalate(
            ctx.route_for("sales"), "sales lead from a public mention",
            notice=replies.public_sales(ctx.voice, ctx.opening),
            # Ticket data is internal: the lead may hold what they wrote; only the public *reply* must not.
            rule="sales mention: public reply, sales ticket", data={"lead": lead},
        )
    entry = best_faq(ctx.content, ctx.nlu.intent, ctx.msg.text)
    answer = entry.answer if entry is not None else ""
    missing = [k for k in ("company", "size", "email") if not lead.get(k)]
    if any(k in missing for k in ("company", "size")):
        lead["summary"] = _lead_summary(lead)
        return ctx.escalate(
            ctx.route_for("sales"), "sales lead", rule="sales: sales ticket, ask once for the missing details",
            notice=replies.sales_ticket_ask(ctx.voice, answer, missing, ctx.opening), data={"lead": lead},
            keep={"lead": lead, "lead_asked": True},
        )
    return _open_sales_ticket(ctx, lead, rule="sales: complete lead, sales ticket", answer=answer)


def _lead_summary(lead: dict[str, Any]) -> str:
    return "; ".join(
        f"{label}: {lead[key]}" for key, label in
        (("interest", "wants"), ("company", "company"), ("size", "size"), ("email", "contact")) if lead.get(key)
    )


def _open_sales_ticket(ctx: _Ctx, lead: dict[str, Any], *, rule: str, answer: str = "") -> Decision:
    lead.setdefault("interest", "sales")
    lead["summary"] = _lead_summary(lead)
    notice = replies.sales_escalated(ctx.voice, ctx.opening)
    return ctx.escalate(
        ctx.route_for("sales"), "sales lead",
        notice=f"{answer}\n\n{notice}" if answer else notice, rule=rule, data={"lead": lead},
    )


# --- events ------------------------------------------------------------------------------------------------------


def upcoming(content: Content, now: datetime) -> list[Event]:
    return [e for e in content.events if e.ends_at > now and not e.cancelled]


def _identified(ctx: _Ctx) -> Identified:
    """The upcoming events the message points at (by name, keyword, kind or an NLU entity), best first."""
    entity_text = " ".join(
        str(e.value) for e in (ctx.msg.nlu.entities if ctx.msg.nlu else []) if e.entity in ("event", "event_name")
    )
    return identify(upcoming(ctx.content, ctx.msg.now), ctx.msg.text, now=ctx.msg.now, extra=entity_text)


def _mentioned_event(ctx: _Ctx) -> Event | None:
    """The best-matching upcoming event; the soonest on a tie (for answers, not for registering)."""
    return _identified(ctx).best


def _names_unknown_event(ctx: _Ctx) -> bool:
    return any(e.entity in ("event", "event_name") for e in (ctx.msg.nlu.entities if ctx.msg.nlu else []))


def _events(ctx: _Ctx) -> Decision:
    intent = ctx.nlu.intent or ""
    event = _mentioned_event(ctx)
    coming = upcoming(ctx.content, ctx.msg.now)
    if intent == "event_registration" or (
        intent != "event_cancellation" and ctx.content.words.asks_to_register(ctx.msg.text)
    ):
        return _register_if_clear(ctx, coming)
    if intent == "event_cancellation":
        if event:
            return _cancel(ctx, event)
        mine = [e for e in coming if e.key in ctx.msg.registrations]
        if len(mine) == 1:
            return _cancel(ctx, mine[0])
        if not mine:
            text = replies.nothing_to_cancel(ctx.voice, None)
            return Decision([Reply(text, "event"), ctx.stamp(rephrase_asked=None)], "events: nothing to cancel")
        return _ask_which(ctx, mine, "cancel")
    if intent == "livestream_recording" and event:
        return Decision([Reply(replies.recording_info(ctx.voice, event), "event")],
                        "events: recording answered from the catalogue")
    if event:
        return Decision([Reply(replies.event_info(ctx.voice, event), "event"),
                         ctx.stamp(rephrase_asked=None)],
                        f"events: answered from the catalogue ({event.key})")
    # "What are your opening hours" is not about an event: an FAQ entry for the intent answers it.
    answered = _faq_reply(ctx)
    if answered is not None:
        return answered
    # Contests, promotions and recordings of unknown events are not in the catalogue: people answer those.
    generic_question = intent not in ("livestream_recording", "contest_promo")
    # Only a question about events in general ("any webinars coming up?") gets the list; "is there
    # parking at the arena for the concert" is about an event the catalogue does not know: people answer.
    generic = ctx.content.words.is_about_events(ctx.msg.text) and not _names_unknown_event(ctx)
    if coming and generic and generic_question:
        return Decision([Reply(replies.event_list(ctx.voice, coming[:4]), "event")],
                        "events: listed what is coming up")
    return ctx.escalate(
        ctx.route_for("event"), "the events catalogue has no answer",
        notice=_public_or(ctx, replies.public_human, replies.escalated_events),
        rule="events: not in the catalogue, escalate to events",
    )


def _ask_which(ctx: _Ctx, events: Sequence[Event], action: str) -> Decision:
    if not events:
        return ctx.escalate(
            ctx.route_for("event"), "no upcoming events to register for", priority="normal",
            notice=_public_or(ctx, replies.public_human, replies.escalated_events),
            rule="events: nothing upcoming, escalate",
        )
    shown = list(events[:4])
    return Decision(
        [Reply(replies.ask_which_event(ctx.voice, shown, action), "event"),
         ctx.stamp(awaiting_event=action, offered_events=[e.key for e in shown], confirm_event=None,
                   faq_answered=None)],
        f"events: ask which event to {action}",
    )


def _register_if_clear(ctx: _Ctx, coming: Sequence[Event]) -> Decision:
    """Register only when the words identify one event; two candidates or a detail that disagrees → ask."""
    found = _identified(ctx)
    if found.best is None:
        return _ask_which(ctx, coming, "register")
    if found.one_clear_event:
        return _register(ctx, found.best)
    tied = [e for e in found.candidates if e.mentioned_in(ctx.msg.text) == found.best.mentioned_in(ctx.msg.text)]
    if len(tied) > 1 and not found.mismatch:
        return _ask_which(ctx, tied, "register")
    return Decision(
        [Reply(replies.confirm_event(ctx.voice, found.best, "register"), "event"),
         ctx.stamp(awaiting_event="register", offered_events=[found.best.key], confirm_event=True,
                   faq_answered=None)],
        f"events: confirm before registering ({found.mismatch or 'two candidates'})",
    )


def _register(ctx: _Ctx, event: Event) -> Decision:
    clear = ctx.stamp(awaiting_event=None, offered_events=None, confirm_event=None, rephrase_asked=None)
    return Decision(
        [Register(event, ctx.voice), clear],
        f"events: register for {event.key}",
    )


def _cancel(ctx: _Ctx, event: Event) -> Decision:
    clear = ctx.stamp(awaiting_event=None, offered_events=None, confirm_event=None, rephrase_asked=None)
    return Decision(
        [CancelRegistration(event, ctx.voice), clear],
        f"events: cancel {event.key}",
    )


# --- human and smalltalk -------------------------------------------------------------------------------------


def _human(ctx: _Ctx) -> Decision:
    data: dict[str, Any] = {}
    if ctx.state.get("lead"):
        data["lead"] = ctx.state["lead"]
    return ctx.escalate(
        ctx.route_for("human"), "the customer asked for a person", priority="high",
        notice=_public_or(ctx, replies.public_human, replies.escalated_human), rule="human: escalate at once",
        data=data,
    )


def _smalltalk(ctx: _Ctx) -> Decision:
    # "Thanks for the update but my problem still isn't fixed", "shoutout for losing my bag": thanks or
    # praise words around a problem are a support message; a cheerful reply to them would be the harm.
    if ctx.content.words.names_a_problem(ctx.msg.text) or ctx.content.words.did_not_help(ctx.msg.text):
        return _support(ctx, friendly_words=True)
    answered = _faq_reply(ctx)  # "what are your opening hours" read as chitchat still gets the hours
    if answered is not None:
        return answered
    return Decision(
        [Reply(replies.smalltalk(ctx.voice, ctx.nlu.intent), "smalltalk"),
         ctx.stamp(rephrase_asked=None, faq_answered=None)],
        "smalltalk: short reply, no ticket",
    )


_BY_CATEGORY = {
    "support": _support,
    "sales": _sales,
    "event": _events,
    "human": _human,
    "smalltalk": _smalltalk,
}
