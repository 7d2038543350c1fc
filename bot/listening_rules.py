"""Listening rules (`content/listening.yml`): what the brand wants to hear about on X, as X search queries.

Each rule has a `name`, an X recent-search `query` (brand and product names, hashtags, misspellings) and
`exclude` terms; the query sent to X is ``(<query>) -<term> … -is:retweet`` (retweets repeat a post and are
billed again).  Checked at start-up, on every reload and by `frontdesk content check`, so that a rule X would
refuse fails here with the file and line, not as a 400 from X at the first poll:

- the query sent must fit X's limit for the brand's tier (build-a-query.mdx: 512 characters on self-serve
  tiers, 4,096 on Enterprise; `tier:` in the file, default self-serve);
- only the operators Frontdesk supports (`SUPPORTED_OPERATORS`: the bare forms `word`, `"exact phrase"`,
  `#hashtag`, `@user`, negation `-`, `OR`, parentheses, plus `from:`, `to:`, `conversation_id:`, `lang:`,
  `is:retweet|reply|quote`, `has:links|mentions|hashtags`), balanced quotes and parentheses, and at least one
  term that is not negated nor conjunction-only (X refuses `is:reply` or `-acme` alone).

docs/listening.md describes the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot import yaml_nodes

TIERS = {"self-serve": 512, "enterprise": 4096}
SUPPORTED_OPERATORS: dict[str, tuple[str, ...] | None] = {
    "from": None, "to": None, "conversation_id": None, "lang": None,
    "is": ("retweet", "reply", "quote"), "has": ("links", "mentions", "hashtags"),
}
_CONJUNCTION_ONLY = ("is", "has", "lang")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TOKEN = re.compile(r'\s*(-?)("[^"]*"|\(|\)|[^\s()"]+)')
MAX_RULES = 50  # one search request per rule per poll: more would not fit X's 450 per 15 minutes


class ListeningError(ValueError):
    """listening.yml is malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ListeningRule:
    name: str
    query: str
    exclude: tuple[str, ...] = ()

    @property
    def search_query(self) -> str:
        """The query sent to X: the rule's, minus its excluded terms and retweets."""
        excluded = " ".join(f'-"{t}"' if " " in t else f"-{t}" for t in self.exclude)
        return " ".join(p for p in (f"({self.query})", excluded, "-is:retweet") if p)


@dataclass(frozen=True)
class ListeningRules:
    rules: tuple[ListeningRule, ...] = ()
    tier: str = "self-serve"

    def rule(self, name: str) -> ListeningRule | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules]


def load_listening(path: Path) -> ListeningRules:
    """The rules in `path`; no file means no listening (nothing is polled)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ListeningRules()
    node = yaml_nodes.compose(path, raw, ListeningError)
    if node is None:
        return ListeningRules()
    if not isinstance(node, yaml.MappingNode):
        raise ListeningError(f"{path}:1: needs `rules:`, a list of {{name, query, exclude}}")
    top = {str(k.value): (k.start_mark.line + 1, v) for k, v in node.value}
    for key, (line, _) in top.items():
        if key not in ("tier", "rules"):
            raise ListeningError(f"{path}:{line}: unknown key `{key}`; use tier, rules")
    tier = "self-serve"
    if "tier" in top:
        tier = str(yaml.safe_load(yaml.serialize(top["tier"][1])))
        if tier not in TIERS:
            raise ListeningError(f"{path}:{top['tier'][0]}: tier must be one of {', '.join(TIERS)}, not {tier!r}")
    rules_node = top.get("rules", (1, None))[1]
    if rules_node is None:
        return ListeningRules(tier=tier)
    if not isinstance(rules_node, yaml.SequenceNode):
        raise ListeningError(f"{path}:{rules_node.start_mark.line + 1}: `rules` must be a list")
    rules: list[ListeningRule] = []
    for item in rules_node.value:
        rule = _rule(path, item, TIERS[tier])
        if rule.name in {r.name for r in rules}:
            raise ListeningError(f"{path}:{item.start_mark.line + 1}: rule name {rule.name!r} is used twice")
        rules.append(rule)
    if len(rules) > MAX_RULES:
        raise ListeningError(f"{path}: {len(rules)} rules; at most {MAX_RULES} (one search per rule per poll)")
    return ListeningRules(rules=tuple(rules), tier=tier)


def _rule(path: Path, node: yaml.Node, max_chars: int) -> ListeningRule:
    where = f"{path}:{node.start_mark.line + 1}"
    value = yaml.safe_load(yaml.serialize(node))
    if not isinstance(value, dict):
        raise ListeningError(f"{where}: a rule is a mapping with name, query and exclude")
    unknown = set(value) - {"name", "query", "exclude"}
    if unknown:
        raise ListeningError(f"{where}: unknown key `{sorted(unknown)[0]}` in a rule; use name, query, exclude")
    name = value.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ListeningError(f"{where}: `name` must be 1-32 lower-case letters, digits, - or _ (e.g. checkout)")
    query = value.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ListeningError(f"{where}: rule {name!r}: `query` must be an X search query, e.g. acme OR #acme")
    exclude = value.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(t, str) and t.strip() and '"' not in t for t in exclude):
        raise ListeningError(f"{where}: rule {name!r}: `exclude` must be a list of words or phrases (no quotes)")
    rule = ListeningRule(name=name, query=" ".join(query.split()), exclude=tuple(" ".join(t.split()) for t in exclude))
    problem = query_problem(rule.query)
    if problem:
        raise ListeningError(f"{where}: rule {name!r}: {problem}")
    sent = rule.search_query
    if len(sent) > max_chars:
        raise ListeningError(
            f"{where}: rule {name!r}: the query sent to X has {len(sent)} characters (with its exclusions); "
            f"X takes at most {max_chars} on this tier: split it into two rules"
        )
    return rule


def query_problem(query: str) -> str | None:
    """Why X (or Frontdesk) would refuse `query`, or None."""
    depth = 0
    standalone = False
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or not m.group(2):
            if query[pos:].strip():
                return f"unbalanced quotes at character {pos + 1}"
            break
        pos = m.end()
        neg, token = m.group(1), m.group(2)
        if token == "(":
            depth += 1
            continue
        if token == ")":
            depth -= 1
            if depth < 0:
                return f"unbalanced parentheses at character {m.start(2) + 1}"
            continue
        if token == "OR":
            continue
        name, colon, value = token.partition(":")
        if colon and re.fullmatch(r"[a-z_]+", name) and not token.startswith(('"', "#", "@")):
            if name not in SUPPORTED_OPERATORS:
                return (f"operator `{name}:` is not supported; use words, \"phrases\", #hashtags, @users, -, OR, "
                        f"parentheses and {', '.join(o + ':' for o in SUPPORTED_OPERATORS)}")
            allowed = SUPPORTED_OPERATORS[name]
            if not value or (allowed is not None and value.lower() not in allowed):
                choices = " or ".join(f"{name}:{v}" for v in allowed) if allowed else f"{name}:<value>"
                return f"`{token}` is not an operator X knows; use {choices}"
            if name in _CONJUNCTION_ONLY:
                continue
        if token == '""':
            return "an empty phrase \"\""
        if not neg:
            standalone = True
    if depth:
        return "unbalanced parentheses (a `(` is never closed)"
    if not standalone:
        return "X needs at least one word, phrase, #hashtag or @user that is not negated"
    return None
