"""Everything the bot says, as the brand wrote it in `content/replies.yml`, checked before it is used.

The file has three sections (docs/content.md lists every key with its placeholders):

- `dm:` one text per key, said in a DM or a Telegram chat;
- `public:` a list of wordings per key, said in a public reply on X.  X refuses a post whose text the
  account already posted within a day (the emulator models it: sandbox/x/state.py), so every wording
  must name the customer (`{handle}`) and there must be at least two: a reply X still calls a duplicate
  is sent again in the next wording (`Texts.alternatives`).  Each wording must fit one post (280, counted
  the way X counts: a link is 23) with every placeholder at its longest;
- `parts:` pieces the others are built from (the business-hours note, dates, lists).

Loading fails with `<file>:<line>: <problem>` on an unknown or missing key, an unknown `{placeholder}`,
a public wording without `{handle}` or one that can exceed 280: the same rule as the FAQ, so a typo stops
`frontdesk run` (or `frontdesk content check`) instead of reaching a customer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot import yaml_nodes
from frontdesk.core.vocabulary import X_POST_MAX_CHARS
from frontdesk.core.x_text import x_weighted_length

MIN_PUBLIC_WORDINGS = 2

_HOURS = frozenset({"hours"})
_EVENT_DM = frozenset({"event", "when", "where", "registration_url"})

# What each key may use.  The typed API (bot/replies.py) fills exactly these.
DM_KEYS: dict[str, frozenset[str]] = {
    "faq_answer": frozenset({"answer"}),
    "escalated_support": _HOURS,
    "escalated_complaint": _HOURS,
    "escalated_general": _HOURS,
    "escalated_human": _HOURS,
    "escalated_events": _HOURS,
    "escalated_nlu_down": _HOURS,
    "queue_notice": _HOURS,
    "ask_rephrase": frozenset(),
    "ask_lead_details": frozenset({"wanted"}),
    "sales_ticket_ask": frozenset({"answer", "wanted", "hours"}),
    "lead_noted": _HOURS,
    "sales_escalated": frozenset(),
    "sales_escalated_after_hours": frozenset({"next_opening"}),
    "smalltalk_greet": frozenset(),
    "smalltalk_thanks": frozenset(),
    "smalltalk_goodbye": frozenset(),
    "smalltalk_praise": frozenset(),
    "smalltalk_chitchat": frozenset(),
    "event_info": _EVENT_DM,
    "event_list": frozenset({"list"}),
    "event_list_item": frozenset({"number", "event", "when"}),
    "ask_which_event": frozenset({"verb", "choices"}),
    "confirm_event": frozenset({"event", "date", "verb"}),
    "event_choice": frozenset({"number", "event", "date"}),
    "registered": frozenset({"event", "when", "where"}),
    "already_registered": frozenset({"event", "when"}),
    "event_full": frozenset({"event"}),
    "registration_cancelled": frozenset({"event"}),
    "nothing_to_cancel": frozenset(),
    "not_registered": frozenset({"event"}),
    "recording_yes": frozenset({"event", "registration_url", "when"}),
    "recording_no": frozenset({"event", "when"}),
    "csat_question": frozenset(),
    "csat_thanks": frozenset(),
    "opted_in": frozenset(),
    "opted_out": frozenset(),
    "announcement_footer": frozenset(),
    "event_reminder": frozenset({"event", "when", "where", "in"}),
    "event_changed": frozenset({"event", "when", "where"}),
    "event_cancelled": frozenset({"event", "when"}),
}
_INVITE = frozenset({"handle", "dm_link", "hours"})
PUBLIC_KEYS: dict[str, frozenset[str]] = {
    "invite_dm": _INVITE,
    "invite_dm_complaint": _INVITE,
    "sales": _INVITE,
    "handed_to_person": _INVITE,
    "ask_rephrase": frozenset({"handle", "dm_link"}),
    "queue_notice": frozenset({"handle", "hours"}),
    "smalltalk_greet": frozenset({"handle", "dm_link"}),
    "smalltalk_thanks": frozenset({"handle"}),
    "smalltalk_goodbye": frozenset({"handle"}),
    "smalltalk_praise": frozenset({"handle"}),
    "smalltalk_chitchat": frozenset({"handle"}),
    "event_info": frozenset({"handle", "event", "date", "registration_url"}),
    "event_list": frozenset({"handle", "event", "date", "events_url"}),
    "ask_which_event": frozenset({"handle", "verb", "choices"}),
    "confirm_event": frozenset({"handle", "event", "date", "verb"}),
    "registered": frozenset({"handle", "event", "date"}),
    "already_registered": frozenset({"handle", "event", "date"}),
    "event_full": frozenset({"handle", "event"}),
    "registration_cancelled": frozenset({"handle", "event"}),
    "nothing_to_cancel": frozenset({"handle"}),
    "not_registered": frozenset({"handle", "event"}),
    "recording_yes": frozenset({"handle", "event", "registration_url"}),
    "recording_no": frozenset({"handle", "event", "date"}),
    "csat_question": frozenset({"handle"}),
    "csat_thanks": frozenset({"handle"}),
    "opted_in": frozenset({"handle"}),
    "opted_out": frozenset({"handle"}),
    "event_reminder": frozenset({"handle", "event", "date", "link", "in"}),
    "event_changed": frozenset({"handle", "event", "date", "link"}),
    "event_cancelled": frozenset({"handle", "event", "date"}),
}
PART_KEYS: dict[str, frozenset[str]] = {
    "hours_note": frozenset({"next_opening"}),
    "lead_company": frozenset(),
    "lead_size": frozenset(),
    "lead_email": frozenset(),
    "list_and": frozenset(),
    "verb_register": frozenset(),
    "verb_cancel": frozenset(),
    "public_choice": frozenset({"number", "event"}),
    "when": frozenset({"weekday", "day", "month", "year", "start", "end", "zone", "timezone"}),
    "date": frozenset({"weekday", "day", "month", "start", "zone"}),
    "long_date": frozenset({"weekday", "day", "month"}),
    "where_place_and_stream": frozenset({"place", "stream_url"}),
    "where_place": frozenset({"place"}),
    "where_online": frozenset({"stream_url"}),
    "in_days": frozenset({"count"}),
    "in_hours": frozenset({"count"}),
    "in_one_hour": frozenset(),
    "in_minutes": frozenset({"count"}),
    "in_one_minute": frozenset(),
}
_SECTIONS: dict[str, dict[str, frozenset[str]]] = {"dm": DM_KEYS, "public": PUBLIC_KEYS, "parts": PART_KEYS}

# Longest values a placeholder can take, for the 280 check.  An X username is at most 15 characters; the
# DM link is one URL (23 for X); the next opening reads e.g. "Wednesday 09:00 (America/Argentina/Ushuaia)".
_LONGEST = {
    "handle": "x" * 15,
    "dm_link": "https://x.com/messages/compose?recipient_id=18446744073709551615",
    "next_opening": "x" * 60,
    "events_url": "https://example.com/events",
    "verb": "x" * 20,
    "link": "x" * 60,  # a reminder's join link (23) or an event's place
    "in": "x" * 20,  # parts.in_hours etc.
}


class TextsError(ValueError):
    """replies.yml is wrong; the message reads `<file>:<line>: <problem>`."""


@dataclass(frozen=True)
class Wording:
    text: str
    line: int
    fields: tuple[str, ...]  # placeholders, in order of appearance


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one loaded file is one object
class Texts:
    """The loaded replies.yml.  `dm`, `public` and `part` render; `alternatives` rewords a public text."""

    dms: Mapping[str, Wording]
    publics: Mapping[str, tuple[Wording, ...]]
    parts: Mapping[str, Wording]
    path: Path

    def dm(self, key: str, **values: str) -> str:
        return _render(self.dms[key].text, values)

    def part(self, key: str, **values: str) -> str:
        return _render(self.parts[key].text, values)

    def public(self, key: str, *, seed: int, **values: str) -> str:
        """Wording number `seed` (modulo how many there are) of public text `key`."""
        wordings = self.publics[key]
        return _render(wordings[seed % len(wordings)].text, values)

    def public_wordings(self, key: str, **values: str) -> list[str]:
        return [_render(w.text, values) for w in self.publics[key]]

    def alternatives(self, text: str) -> list[str]:
        """The other wordings of the public reply `text`, the next one first (empty: not one of ours).

        Read back from the text itself (each wording as a pattern, its placeholders as groups), so the
        sender needs nothing stored beside the outbox row, and a restart or a reload loses nothing.
        """
        for wordings in self.publics.values():
            for index, wording in enumerate(wordings):
                values = _match(wording, text)
                if values is None:
                    continue
                found = []
                for step in range(1, len(wordings)):
                    other = wordings[(index + step) % len(wordings)]
                    if set(other.fields) <= set(values):
                        candidate = _render(other.text, values)
                        if candidate != text and candidate not in found:
                            found.append(candidate)
                return found
        return []


def load_texts(path: Path, *, events: Sequence[Any] = ()) -> Texts:
    """Load and check replies.yml; `events` (the catalogue) sizes the event placeholders for the 280 check."""
    root = _compose(path)
    sections = _mapping(path, root, "the file")
    unknown = set(sections) - set(_SECTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise TextsError(f"{path}:{sections[key][0]}: unknown section `{key}`; use dm, public and parts")
    loaded: dict[str, dict[str, Any]] = {}
    for section, allowed in _SECTIONS.items():
        if section not in sections:
            raise TextsError(f"{path}:1: the `{section}:` section is missing")
        line, node = sections[section]
        entries = _mapping(path, node, f"`{section}`")
        for key, (key_line, _) in entries.items():
            if key not in allowed:
                raise TextsError(
                    f"{path}:{key_line}: unknown key `{section}.{key}`; the keys are: {', '.join(sorted(allowed))}"
                )
        missing = sorted(set(allowed) - set(entries))
        if missing:
            raise TextsError(f"{path}:{line}: `{section}.{missing[0]}` is missing (every key must be given)")
        loaded[section] = {
            key: (_wordings(path, section, key, node, allowed[key]) if section == "public"
                  else _wording(path, f"{section}.{key}", node, allowed[key]))
            for key, (_, node) in entries.items()
        }
    texts = Texts(dms=loaded["dm"], publics=loaded["public"], parts=loaded["parts"], path=path)
    _check_lengths(texts, events)
    return texts


# --- rendering -----------------------------------------------------------------------------------------------


def _render(template: str, values: Mapping[str, str]) -> str:
    return _tidy(template.format_map(_Values(values)))


class _Values(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""  # an optional piece the caller did not give (the hours note during business hours)


def _tidy(text: str) -> str:
    """Spaces left by an empty placeholder go: "back {hours}." during business hours reads "back."."""
    lines = []
    for line in text.split("\n"):
        line = re.sub(r"[ \t]+", " ", line)
        line = re.sub(r" ([,.!?;:)])", r"\1", line)
        line = line.strip()
        if line[:1] in (",", ";"):  # "{handle}, we're sorry…" without a handle: "We're sorry…"
            line = line[1:].strip()
            line = line[:1].upper() + line[1:]
        lines.append(line)
    return "\n".join(lines).strip()


_MAY_BE_EMPTY = frozenset({"hours", "handle"})


def _match(wording: Wording, text: str) -> dict[str, str] | None:
    """The placeholder values `text` was rendered with from `wording`, or None if it was not."""
    parsed = list(string.Formatter().parse(wording.text))
    pattern = ""
    seen: set[str] = set()
    for index, (literal, name, _, _) in enumerate(parsed):
        before = parsed[index - 1][1] if index else None  # the placeholder just before this literal
        pieces = re.split(r"(\s+)", literal)
        for at, piece in enumerate(pieces):
            if not piece.isspace():
                pattern += re.escape(piece)
                continue
            # Rendering drops a space beside an empty placeholder and before punctuation (`_tidy`);
            # elsewhere a space stays a space, so "on" never matches inside "Frontdesk".
            beside_empty = (at == 0 and before in _MAY_BE_EMPTY) or (at == len(pieces) - 1 and name in _MAY_BE_EMPTY)
            before_punctuation = at + 1 < len(pieces) and pieces[at + 1][:1] in ",.!?;:)"
            edge = (at == 0 and before is None) or (at == len(pieces) - 1 and name is None)
            pattern += r"\s*" if beside_empty or before_punctuation or edge else r"\s+"
        if name is not None:
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.*?)"
            seen.add(name)
    match = re.fullmatch(pattern, text, re.DOTALL)
    if match is None:
        return None
    return {k: (v or "").strip() for k, v in match.groupdict().items()}


# --- checking -------------------------------------------------------------------------------------------------


def _check_lengths(texts: Texts, events: Sequence[Any]) -> None:
    hours = texts.part("hours_note", next_opening=_LONGEST["next_opening"])
    base = {**_LONGEST, "hours": hours,
            "verb": max((texts.part("verb_register"), texts.part("verb_cancel")), key=len)}
    samples = [dict(base, event="x" * 40, date="x" * 24, registration_url=_LONGEST["events_url"])]
    samples += [dict(base, event=e.name, date=_date(texts, e), registration_url=e.registration_url) for e in events]
    longest_choices = sorted((_choice(texts, i, e) for i, e in enumerate(events, 1)), key=len)[-4:]
    for sample in samples:
        sample["choices"] = " ".join(longest_choices) or "x" * 100
    for key, wordings in texts.publics.items():
        for wording in wordings:
            about_events = bool({"event", "date", "registration_url", "choices"} & set(wording.fields))
            for index, sample in enumerate(samples if about_events else samples[:1]):
                length = x_weighted_length(_render(wording.text, sample))
                if length > X_POST_MAX_CHARS:
                    which = f"with the event {sample['event']!r} and " if about_events and index else "with "
                    raise TextsError(
                        f"{texts.path}:{wording.line}: `public.{key}` can be {length} characters long "
                        f"({which}every placeholder at its longest); a public reply must fit "
                        f"{X_POST_MAX_CHARS}: shorten it"
                    )


def _date(texts: Texts, event: Any) -> str:
    start = event.starts_at
    return texts.part("date", weekday=f"{start:%a}", day=str(start.day), month=f"{start:%b}",
                      start=f"{start:%H:%M}", zone=f"{start:%Z}")


def _choice(texts: Texts, number: int, event: Any) -> str:
    return texts.part("public_choice", number=str(number), event=event.name)


# --- YAML with line numbers -----------------------------------------------------------------------------------


def _compose(path: Path) -> yaml.Node:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TextsError(
            f"{path}: not found; every content folder needs replies.yml (copy the shipped content/replies.yml)"
        ) from None
    node = yaml_nodes.compose(path, text, TextsError)
    if node is None:
        raise TextsError(f"{path}:1: the file is empty; it needs the dm, public and parts sections")
    return node


def _mapping(path: Path, node: yaml.Node, what: str) -> dict[str, tuple[int, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise TextsError(f"{path}:{node.start_mark.line + 1}: {what} must be a mapping (key: value lines)")
    out: dict[str, tuple[int, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in out:
            raise TextsError(f"{path}:{key_node.start_mark.line + 1}: `{key}` is given twice (first at line "
                             f"{out[key][0]})")
        out[key] = (key_node.start_mark.line + 1, value_node)
    return out


def _wordings(path: Path, section: str, key: str, node: yaml.Node, allowed: frozenset[str]) -> tuple[Wording, ...]:
    name = f"{section}.{key}"
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.SequenceNode):
        raise TextsError(f"{path}:{line}: `{name}` must be a list of wordings (- \"...\" lines), at least "
                         f"{MIN_PUBLIC_WORDINGS}, so that no two customers get the same public text")
    wordings = [_wording(path, name, item, allowed) for item in node.value]
    if len(wordings) < MIN_PUBLIC_WORDINGS:
        raise TextsError(f"{path}:{line}: `{name}` has {len(wordings)} wording(s); give at least "
                         f"{MIN_PUBLIC_WORDINGS} (X refuses a repeated post: the sender falls back to the next)")
    for wording in wordings:
        if "handle" not in wording.fields:
            raise TextsError(f"{path}:{wording.line}: `{name}`: every public wording must contain {{handle}} "
                             "(the customer's X username), so that no two customers get the same text")
    texts = [w.text for w in wordings]
    for wording in wordings:
        if texts.count(wording.text) > 1:
            raise TextsError(f"{path}:{wording.line}: `{name}`: this wording is given twice; make each one differ")
    return tuple(wordings)


def _wording(path: Path, name: str, node: yaml.Node, allowed: frozenset[str]) -> Wording:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise TextsError(f"{path}:{line}: `{name}` must be non-empty text")
    text = str(node.value).strip()
    bad = next((c for c in text if ord(c) < 32 and c not in "\n\t"), None)
    if bad is not None:
        raise TextsError(f"{path}:{line}: `{name}` contains the control character {bad!r}; remove it")
    return Wording(text=text, line=line, fields=tuple(_fields(path, line, name, text, allowed)))


def _fields(path: Path, line: int, name: str, text: str, allowed: frozenset[str]) -> Iterable[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TextsError(f"{path}:{line}: `{name}`: {exc}; write a literal brace as {{{{ or }}}}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        hint = f"; `{name}` can use {', '.join('{' + a + '}' for a in sorted(allowed))}" if allowed else \
            f"; `{name}` takes no placeholders"
        if field_name not in allowed:
            raise TextsError(f"{path}:{line}: unknown placeholder {{{field_name}}}{hint}")
        if spec or conversion:
            raise TextsError(f"{path}:{line}: `{name}`: write {{{field_name}}} without a format (:…) or !…")
        yield field_name
