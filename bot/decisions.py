"""What the bot *does* with a message, classed right / safe / harmful: what `frontdesk eval decisions` prints.

The NLU's F1 is not what a customer feels; the decision is.  Each labelled message (``text,category``)
goes through the real NLU and the real router (`bot.router.route`) as the first message of a fresh
conversation; the router is a pure function, so nothing is written anywhere.  The decision is then
classed against the message's true category (issue 18, "Measure decisions"):

- **right**: support → a support answer (FAQ) or a support ticket; sales → the lead flow or a sales
  ticket; event → an event answer, the registration flow or an events ticket; human → a ticket at
  once; smalltalk → a friendly reply and no ticket; other → ask once, or the general queue.
- **safe**: not right but harmless: asking once to rephrase, a ticket in the general queue.
- **harmful**: an automated answer meant for another category (an FAQ, event or small-talk reply to a
  complaint), a ticket in another specialised queue, or a request for a person left without a ticket.

Only aggregates leave this module (rates, per category, the most common harmful *pairs*), never rows:
the evaluation file's rows must not be printed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.content import Content
from bot.router import (
    CancelRegistration,
    Decision,
    Escalate,
    Incoming,
    Register,
    Reply,
    RouterConfig,
    route,
)
from bot.taxonomy import Taxonomy
from frontdesk.core.vocabulary import CATEGORIES
from nlu.client import ParseResult

RIGHT, SAFE, HARMFUL = "right", "safe", "harmful"
VERDICTS = (RIGHT, SAFE, HARMFUL)
# The categories with a queue of their own; the others (human, smalltalk, other) go to the general queue.
SPECIALISED = ("support", "sales", "event")

_HANDLE = re.compile(r"(?<!\w)@\w")

Parse = Callable[[str], Awaitable[ParseResult | None]]


def kind_for(text: str, kind: str = "auto") -> str:
    """The conversation a message arrives in: `auto` reads one that tags a handle as a public mention."""
    if kind != "auto":
        return kind
    return "public" if _HANDLE.search(text) else "dm"


def decide(
    text: str, parsed: ParseResult | None, content: Content, config: RouterConfig, *, kind: str, now: datetime,
) -> Decision:
    """The router's decision for `text` as the first message of a fresh conversation (no side effects)."""
    incoming = Incoming(
        message_id=1, text=text, conversation_kind=kind, status="bot", now=now, nlu=parsed,
        nlu_error="" if parsed is not None else "no parse",
    )
    return route(incoming, content, config)


@dataclass(frozen=True)
class Classed:
    verdict: str
    action: str  # what the bot did, e.g. "ticket:sales", "answer:event", "ask", "answer:smalltalk+ticket:general"


def describe(decision: Decision) -> tuple[list[str], list[str], bool]:
    """(ticket queues, categories the automated answers are meant for, whether it asked a neutral question)."""
    queues = [e.queue for e in decision.of(Escalate)]
    answers = [r.meant_for for r in decision.of(Reply) if r.meant_for]
    answers += ["event" for _ in decision.of(Register) + decision.of(CancelRegistration)]
    asked = any(not r.meant_for for r in decision.of(Reply))
    return queues, answers, asked


def classify(truth: str, decision: Decision, taxonomy: Taxonomy) -> Classed:
    """Class one decision against the message's true category (the rules in the module docstring)."""
    queues, answers, asked = describe(decision)
    action = "+".join(sorted({f"ticket:{q}" for q in queues} | {f"answer:{a}" for a in answers})) or (
        "ask" if asked else "nothing"
    )
    own_queue = taxonomy.category_route(truth).queue if truth in SPECIALISED else taxonomy.fallback.queue
    specialised_queues = {taxonomy.category_route(c).queue for c in SPECIALISED} - {taxonomy.fallback.queue}
    wrong_answer = any(a != truth for a in answers)
    wrong_queue = any(q in specialised_queues and q != own_queue for q in queues)
    if wrong_answer or wrong_queue or (truth == "human" and not queues):
        return Classed(HARMFUL, action)
    if truth in SPECIALISED:
        right = bool(queues or answers) and all(q == own_queue for q in queues)
    elif truth == "human":
        right = True  # a ticket at once (any queue a person reads; a specialised one was harmful above)
    elif truth == "smalltalk":
        right = not queues and bool(answers)
    else:  # other: ask once, or the general queue
        right = not answers and (bool(queues) or asked)
    return Classed(RIGHT if right else SAFE, action)


@dataclass
class DecisionReport:
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    per_category: dict[str, Counter[str]] = field(default_factory=lambda: {c: Counter() for c in CATEGORIES})
    harmful_pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)

    def add(self, truth: str, classed: Classed, rule: str) -> None:
        self.total += 1
        self.counts[classed.verdict] += 1
        self.per_category.setdefault(truth, Counter())[classed.verdict] += 1
        self.rules[rule] += 1
        if classed.verdict == HARMFUL:
            self.harmful_pairs[(truth, classed.action)] += 1

    def rate(self, verdict: str) -> float:
        return self.counts[verdict] / self.total if self.total else 0.0

    def as_dict(self, top: int = 10) -> dict[str, Any]:
        return {
            "messages": self.total,
            **{verdict: round(self.rate(verdict), 4) for verdict in VERDICTS},
            "per_category": {
                c: {"messages": sum(n.values()), **{v: n[v] for v in VERDICTS}}
                for c, n in self.per_category.items() if sum(n.values())
            },
            "harmful_pairs": [
                {"category": c, "decision": a, "messages": n} for (c, a), n in self.harmful_pairs.most_common(top)
            ],
        }


async def parse_all(texts: Sequence[str], parse: Parse) -> list[ParseResult | None]:
    """One parse at a time (Rasa answers one at a time; a queue would only measure the queue)."""
    return [await parse(text) for text in texts]


def score_decisions(
    rows: Sequence[tuple[str, str]], parsed: Sequence[ParseResult | None], content: Content,
    config: RouterConfig, *, kind: str = "auto", now: datetime,
) -> DecisionReport:
    """Route every parsed (text, category) row and class the decisions (cheap: thresholds can be swept)."""
    report = DecisionReport()
    for (text, truth), result in zip(rows, parsed):
        decision = decide(text, result, content, config, kind=kind_for(text, kind), now=now)
        report.add(truth, classify(truth, decision, config.taxonomy), decision.rule)
    return report


def format_decisions(report: DecisionReport, title: str = "decisions", top: int = 8) -> str:
    lines = [
        f"{title}: {report.total} messages   right {report.rate(RIGHT):.1%}   safe {report.rate(SAFE):.1%}   "
        f"harmful {report.rate(HARMFUL):.1%}",
        "",
        f"{'category':<10} {'n':>4} {'right':>7} {'safe':>7} {'harmful':>8}",
    ]
    for category, counts in report.per_category.items():
        n = sum(counts.values())
        if n:
            lines.append(
                f"{category:<10} {n:>4} {counts[RIGHT] / n:>7.1%} {counts[SAFE] / n:>7.1%} {counts[HARMFUL] / n:>8.1%}"
            )
    if report.harmful_pairs:
        lines += ["", "most common harmful decisions (true category -> what the bot did):"]
        lines += [f"  {n:>3}  {c} -> {a}" for (c, a), n in report.harmful_pairs.most_common(top)]
    return "\n".join(lines)
