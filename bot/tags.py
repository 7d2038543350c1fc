"""The bot's tag rules (`content/tags.yml`): which tags a ticket gets when the bot opens it or adds a
customer's message to it ("vip" for the brand's key accounts, "order" when the NLU found an order number,
"angry" for an angry support message).

A rule names its tag and one or more conditions; it applies when all of them hold:

    handles:    the customer's handle is one of these (any channel, without "@", case ignored)
    entities:   the NLU found one of these entities in the message (e.g. order_number)
    categories: the message's category (content/taxonomy.yml) is one of these
    intents:    the NLU's intent is one of these
    angry:      true: the message has words of anger (content/words.yml `angry`: phrases, "!!!", shouting)

Checked at start-up, on every reload and by `frontdesk content check`.  A folder without tags.yml has no
tag rules.  Matching is pure (no I/O): the router calls `tags_for` and returns the tags as an effect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot import yaml_nodes
from frontdesk.core.vocabulary import CATEGORIES, MAX_TAGS_PER_TICKET, TAG_PATTERN

_TAG = re.compile(TAG_PATTERN)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # an entity or intent name as Rasa writes them
_HANDLE = re.compile(r"^@?[A-Za-z0-9_.-]{1,64}$")
_CONDITIONS = ("handles", "entities", "categories", "intents", "angry")


class TagRulesError(ValueError):
    """tags.yml is wrong; the message reads `<file>:<line>: <problem>`."""


@dataclass(frozen=True)
class TagRule:
    tag: str
    handles: frozenset[str] = frozenset()  # lower-case, without "@"
    entities: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    intents: frozenset[str] = frozenset()
    angry: bool = False
    line: int = 0

    def applies(
        self, *, handle: str, entities: Iterable[str], category: str | None, intent: str | None, angry: bool
    ) -> bool:
        if self.handles and handle.lstrip("@").lower() not in self.handles:
            return False
        if self.entities and not self.entities & set(entities):
            return False
        if self.categories and category not in self.categories:
            return False
        if self.intents and intent not in self.intents:
            return False
        return not self.angry or angry


@dataclass(frozen=True)
class TagRules:
    rules: tuple[TagRule, ...] = ()

    @property
    def needs_handle(self) -> bool:
        """Whether a rule looks at the customer's handle (the worker reads it only then)."""
        return any(r.handles for r in self.rules)

    def tags_for(
        self, *, handle: str, entities: Iterable[str], category: str | None, intent: str | None, angry: bool
    ) -> tuple[str, ...]:
        """The tags of every rule that applies, in the file's order, each once."""
        names = set(entities)
        found = (
            r.tag for r in self.rules
            if r.applies(handle=handle, entities=names, category=category, intent=intent, angry=angry)
        )
        return tuple(dict.fromkeys(found))


def load_tag_rules(path: Path) -> TagRules:
    """The rules in `path`; none when the file does not exist; TagRulesError naming file and line otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TagRules()
    node = yaml_nodes.compose(path, text, TagRulesError)
    if node is None:
        return TagRules()
    top = _mapping(path, node, "the file")
    unknown = [k for k in top if k != "rules"]
    if unknown:
        raise TagRulesError(f"{path}:{top[unknown[0]][0]}: unknown key `{unknown[0]}`; the file has one key, `rules`")
    if "rules" not in top:
        return TagRules()
    rules_node = top["rules"][1]
    if not isinstance(rules_node, yaml.SequenceNode):
        raise TagRulesError(f"{path}:{rules_node.start_mark.line + 1}: `rules` must be a list of rules (- tag: ...)")
    rules = tuple(_rule(path, item) for item in rules_node.value)
    distinct = {r.tag for r in rules}
    if len(distinct) > MAX_TAGS_PER_TICKET:
        raise TagRulesError(
            f"{path}:{rules_node.start_mark.line + 1}: the rules name {len(distinct)} tags; a ticket holds at most "
            f"{MAX_TAGS_PER_TICKET}"
        )
    return TagRules(rules)


def _rule(path: Path, node: yaml.Node) -> TagRule:
    line = node.start_mark.line + 1
    items = _mapping(path, node, "a rule")
    for key, (key_line, _) in items.items():
        if key != "tag" and key not in _CONDITIONS:
            raise TagRulesError(f"{path}:{key_line}: unknown key `{key}` in a rule; use tag, {', '.join(_CONDITIONS)}")
    if "tag" not in items:
        raise TagRulesError(f"{path}:{line}: a rule needs a `tag`")
    tag = _scalar(items["tag"][1])
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise TagRulesError(
            f"{path}:{items['tag'][0]}: tag {tag!r} must be 1-32 lower-case letters, digits, '-' or '_' (e.g. vip)"
        )
    if not any(k in items for k in _CONDITIONS):
        raise TagRulesError(
            f"{path}:{line}: the rule for {tag!r} has no condition, so it would tag every ticket; "
            f"give it one of {', '.join(_CONDITIONS)}"
        )
    angry = _scalar(items["angry"][1]) if "angry" in items else False
    if not isinstance(angry, bool):
        raise TagRulesError(f"{path}:{items['angry'][0]}: `angry` must be true or false")
    categories = _names(path, items, "categories", re.compile(r"^[a-z]+$"))
    bad = sorted(c for c in categories if c not in CATEGORIES)
    if bad:
        raise TagRulesError(
            f"{path}:{items['categories'][0]}: unknown category {bad[0]!r}; use {', '.join(CATEGORIES)}"
        )
    return TagRule(
        tag=tag,
        handles=frozenset(h.lstrip("@").lower() for h in _names(path, items, "handles", _HANDLE)),
        entities=_names(path, items, "entities", _NAME),
        categories=categories,
        intents=_names(path, items, "intents", _NAME),
        angry=angry,
        line=line,
    )


def _mapping(path: Path, node: yaml.Node, what: str) -> dict[str, tuple[int, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise TagRulesError(f"{path}:{node.start_mark.line + 1}: {what} must be a mapping (key: value lines)")
    return {str(k.value): (k.start_mark.line + 1, v) for k, v in node.value}


def _scalar(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _names(path: Path, items: dict[str, tuple[int, yaml.Node]], key: str, pattern: re.Pattern[str]) -> frozenset[str]:
    if key not in items:
        return frozenset()
    line, node = items[key]
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise TagRulesError(f"{path}:{line}: `{key}` must be a non-empty list, e.g. [a, b]")
    names = []
    for item in node.value:
        value = _scalar(item)
        if not isinstance(value, str) or not pattern.match(value):
            raise TagRulesError(
                f"{path}:{item.start_mark.line + 1}: `{key}`: {value!r} is not a valid name (quote numbers: \"500\")"
            )
        names.append(value)
    return frozenset(names)
