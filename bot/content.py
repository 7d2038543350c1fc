"""The bot's content: FAQ answers (`content/faq.yml`), the events catalogue (`content/events.yml`), what the
bot says (`content/replies.yml`, bot/texts.py), the word lists it decides with (`content/words.yml`,
bot/words.py) and the rules that tag its tickets (`content/tags.yml`, bot/tags.py).  docs/content.md describes every file.

All are loaded and validated together at start-up (and on every reload, bot/content_store.py), so that a
typo fails `frontdesk run` with the file, the line and the problem, instead of surfacing as a wrong answer
to a customer days later.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.tags import TagRules, TagRulesError, load_tag_rules
from bot.listening_rules import ListeningError, ListeningRules, load_listening
from bot.texts import Texts, TextsError, load_texts
from bot.words import Words, WordsError, load_words
from frontdesk.core.durations import DurationError, parse_offsets
from frontdesk.core.settings import PROJECT_ROOT, Settings
from frontdesk.core.sla import METRICS, NO_SLAS, Metric, SlaTargets, parse_duration
from frontdesk.core.vocabulary import PRIORITIES, QUEUES
from storage.actions.csat import CsatPolicy

SHIPPED_CONTENT_DIR = PROJECT_ROOT / "content"
CONTENT_FILES = ("faq.yml", "events.yml", "replies.yml", "words.yml", "tags.yml", "listening.yml")  # tags, listening may be absent
OPTIONAL_CONTENT_FILES = ("sla.yml",)  # absent: that feature is off (no SLAs)


class ContentError(ValueError):
    """A content file is wrong; the message reads `<file>:<line>: <problem>` and says what to write instead."""


@dataclass(frozen=True)
class FAQEntry:
    key: str
    intents: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str
    # Where the entry starts ("content/faq.yml:42"), for errors found after loading (an unknown intent).
    where: str = field(default="", compare=False)

    def keyword_hits(self, text: str, *, phrases_only: bool = False) -> int:
        """How many of this entry's keywords occur in `text` as whole words (case-insensitive);
        `phrases_only`: only keywords of several words count."""
        return sum(1 for k in self.keywords if (" " in k or not phrases_only) and contains_phrase(text, k))


@dataclass(frozen=True)
class Event:
    key: str
    name: str
    kind: str
    starts_at: datetime  # timezone-aware, in the event's own zone
    timezone: str
    duration_min: int
    registration_url: str
    capacity: int  # 0: unlimited
    keywords: tuple[str, ...]
    place: str = ""
    stream_url: str = ""
    recording: bool = False
    # Seconds before the start at which registrants are reminded, longest first; None: the deployment's
    # default (FRONTDESK_EVENT_REMINDERS); (): never.
    reminders: tuple[int, ...] | None = None
    # Called off: the bot no longer offers it, and its registrants are told once (bot/event_reminders.py).
    cancelled: bool = False

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_min)

    def mentioned_in(self, text: str) -> int:
        """A score for how clearly `text` refers to this event (0: not at all)."""
        score = sum(2 for k in self.keywords if contains_phrase(text, k))
        if contains_phrase(text, self.kind):
            score += 1
        if contains_phrase(text, self.name):
            score += 5
        return score


@functools.cache
def shipped_texts() -> Texts:
    """The shipped content/replies.yml: what a `Content` built in code (tests) says."""
    return load_texts(SHIPPED_CONTENT_DIR / "replies.yml")


@functools.cache
def shipped_words() -> Words:
    return load_words(SHIPPED_CONTENT_DIR / "words.yml")


@dataclass(frozen=True)
class Content:
    faq: tuple[FAQEntry, ...] = ()
    events: tuple[Event, ...] = ()
    sources: dict[str, Path] = field(default_factory=dict)
    texts: Texts = field(default_factory=shipped_texts)
    words: Words = field(default_factory=shipped_words)
    tags: TagRules = field(default_factory=TagRules)  # none unless loaded from a folder
    sla: SlaTargets = NO_SLAS
    # X recent-search rules (listening.yml, optional: no file, no listening).
    listening: ListeningRules = field(default_factory=ListeningRules)

    def event(self, key: str) -> Event | None:
        return next((e for e in self.events if e.key == key), None)


def csat_policy(settings: Settings, texts: Texts | None = None) -> CsatPolicy:
    """When and how the satisfaction question is asked (FRONTDESK_CSAT_*, the brand's `csat_question`).

    Here, beside the content, so that whoever resolves tickets (the desk, the agents' pager) asks in the
    brand's words without composing them itself.  Without `texts`: the replies.yml of `CONTENT_DIR`.
    """
    from bot.replies import csat_phrasing  # bot.replies imports this module

    if texts is None:
        try:
            texts = load_texts(settings.content_dir / "replies.yml")
        except (OSError, TextsError):
            texts = shipped_texts()  # the bot refuses to start on a bad file; the desk still asks in the shipped words
    return CsatPolicy(
        question=csat_phrasing(texts), enabled=settings.csat_enabled, window_days=settings.csat_window_days,
        after_bot_only=settings.csat_after_bot_only, answer_hours=settings.csat_answer_hours,
    )


def contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive containment ("track" is in "track my order", not in "racetrack")."""
    phrase = phrase.strip().lower()
    if not phrase:
        return False
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text.lower()) is not None


def load_content(content_dir: Path) -> Content:
    """Load every file of CONTENT_FILES from `content_dir`; raise ContentError naming file and line."""
    paths = {name.removesuffix(".yml"): content_dir / name for name in CONTENT_FILES}
    events = tuple(load_events(paths["events"]))
    try:
        texts = load_texts(paths["replies"], events=events)
        words = load_words(paths["words"])
        tags = load_tag_rules(paths["tags"])
        listening = load_listening(paths["listening"])
    except (TextsError, WordsError, TagRulesError, ListeningError) as exc:
        raise ContentError(str(exc)) from None
    sla_path = content_dir / "sla.yml"
    return Content(
        faq=tuple(load_faq(paths["faq"])), events=events, sources={**paths, "sla": sla_path},
        texts=texts, words=words, tags=tags, sla=load_sla(sla_path), listening=listening,
    )


# --- FAQ -----------------------------------------------------------------------------------------------


def load_faq(path: Path) -> list[FAQEntry]:
    items = _top_list(path, "faq")
    entries: list[FAQEntry] = []
    seen: dict[str, int] = {}
    for item in items:
        where = _Where(path, item)
        key = where.required_str("key")
        if key in seen:
            raise ContentError(f"{where}: duplicate key {key!r} (first at line {seen[key]}); keys must be unique")
        seen[key] = where.line
        entries.append(
            FAQEntry(
                key=key,
                intents=tuple(where.str_list("intents")),
                keywords=tuple(k.lower() for k in where.str_list("keywords")),
                answer=" ".join(where.required_str("answer").split()),
                where=str(where),
            )
        )
    return entries


def check_faq_intents(content: Content, known_intents: Iterable[str], *, taxonomy_path: Path | str = "") -> None:
    """Every intent an FAQ entry names must be one the taxonomy knows, or the entry would never answer.

    Called at start-up with the taxonomy's intents (any category: pricing, opening hours, shipping…);
    raises ContentError `<faq.yml>:<line>: …` naming the unknown intent and the nearest known one.
    """
    known = sorted(set(known_intents))
    for entry in content.faq:
        for intent in entry.intents:
            if intent in known:
                continue
            near = difflib.get_close_matches(intent, known, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            source = f" ({taxonomy_path})" if taxonomy_path else ""
            raise ContentError(
                f"{entry.where or 'faq.yml'}: FAQ entry {entry.key!r}: intent {intent!r} is not in the taxonomy"
                f"{source}; {hint}known intents: {', '.join(known)}"
            )


def check_tag_intents(content: Content, known_intents: Iterable[str]) -> None:
    """A tag rule's intent must be one the taxonomy knows, or the rule would never apply."""
    known = sorted(set(known_intents))
    for rule in content.tags.rules:
        for intent in sorted(rule.intents - set(known)):
            near = difflib.get_close_matches(intent, known, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ContentError(
                f"{content.sources.get('tags', 'tags.yml')}:{rule.line}: the rule for {rule.tag!r}: intent {intent!r} "
                f"is not in the taxonomy; {hint}known intents: {', '.join(known)}"
            )


# --- events ----------------------------------------------------------------------------------------------


def load_events(path: Path) -> list[Event]:
    items = _top_list(path, "events")
    events: list[Event] = []
    seen: dict[str, int] = {}
    for item in items:
        where = _Where(path, item)
        key = where.required_str("key")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,100}", key):
            raise ContentError(f"{where}: key {key!r} must be lowercase letters, digits and dashes")
        if key in seen:
            raise ContentError(f"{where}: duplicate key {key!r} (first at line {seen[key]}); keys must be unique")
        seen[key] = where.line
        tz_name = where.required_str("timezone")
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ContentError(
                f"{where}: timezone {tz_name!r} is not an IANA time zone; write e.g. Europe/Berlin or UTC"
            ) from None
        starts_raw = where.raw("starts_at")
        try:
            starts = starts_raw if isinstance(starts_raw, datetime) else datetime.fromisoformat(str(starts_raw))
        except ValueError:
            starts = None
        if starts is None or starts.tzinfo is None:
            raise ContentError(
                f"{where}: starts_at {starts_raw!r} must be an ISO date-time with its UTC offset, "
                "e.g. \"2026-12-03T16:00:00+01:00\""
            )
        place = where.optional_str("place")
        stream_url = where.optional_str("stream_url")
        if not place and not stream_url:
            raise ContentError(f"{where}: event {key!r} needs a `place` (in person) or a `stream_url` (online)")
        registration_url = where.required_str("registration_url")
        for name, url in (("registration_url", registration_url), ("stream_url", stream_url)):
            if url and not url.startswith(("https://", "http://")):
                raise ContentError(f"{where}: {name} {url!r} must be an http(s) link")
        events.append(
            Event(
                key=key,
                name=where.required_str("name"),
                kind=where.optional_str("kind") or "event",
                starts_at=starts.astimezone(zone),
                timezone=tz_name,
                duration_min=where.non_negative_int("duration_min", default=60),
                registration_url=registration_url,
                capacity=where.non_negative_int("capacity", default=0),
                keywords=tuple(k.lower() for k in where.str_list("keywords", required=False)),
                place=place,
                stream_url=stream_url,
                recording=bool(where.raw("recording", default=False)),
                reminders=_reminders(where),
                cancelled=_flag(where, "cancelled"),
            )
        )
    events.sort(key=lambda e: e.starts_at)
    return events


# --- SLA targets (content/sla.yml; frontdesk/core/sla.py) ------------------------------------------------


def load_sla(path: Path) -> SlaTargets:
    """The SLA targets; a missing or empty file means no SLAs.  ContentError `file:line: problem` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NO_SLAS
    data = _yaml(path, text)
    if data is None:
        return NO_SLAS
    if not isinstance(data, _LineDict):
        raise ContentError(f"{path}:1: expected a mapping with `default:` and `queues:`")
    _only_keys(path, data, ("default", "queues"), "top-level keys")
    default = _sla_block(path, data, "default") if "default" in data else {}
    queues_raw = data.get("queues") or _LineDict()
    if not isinstance(queues_raw, _LineDict):
        raise ContentError(f"{path}:{data.line}: `queues` must map a queue name to its priorities")
    _only_keys(path, queues_raw, QUEUES, "queues")
    by_queue = {}
    for queue, priorities in queues_raw.items():
        if not isinstance(priorities, _LineDict):
            raise ContentError(f"{path}:{queues_raw.line}: queue `{queue}` must map priorities (or `default`) "
                               "to targets")
        _only_keys(path, priorities, (*PRIORITIES, "default"), f"priorities of queue `{queue}`")
        by_queue[queue] = {p: _sla_block(path, priorities, p) for p in priorities}
    return SlaTargets(default=default, by_queue=by_queue, source=str(path))


def _sla_block(path: Path, parent: _LineDict, key: str) -> dict[Metric, int]:
    block = parent[key]
    if not isinstance(block, _LineDict):
        raise ContentError(f"{path}:{parent.line}: `{key}` must map metrics to durations, e.g. "
                           "{first_response: 1h, next_response: 4h, resolution: 2d}")
    _only_keys(path, block, METRICS, f"metrics of `{key}`")
    found = {}
    for metric, raw in block.items():
        try:
            found[Metric(metric)] = parse_duration(str(raw) if isinstance(raw, (str, int)) else raw)
        except ValueError as exc:
            raise ContentError(f"{path}:{block.line}: `{key}.{metric}`: {exc}") from None
    return found


def _only_keys(path: Path, mapping: _LineDict, allowed: Iterable[str], what: str) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise ContentError(f"{path}:{mapping.line}: unknown key {key!r}; {hint}{what} are {', '.join(allowed)}")


def _reminders(where: _Where) -> tuple[int, ...] | None:
    value = where.raw("reminders", default=None)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContentError(f"{where}: `reminders` must be a list of durations, e.g. [24h, 1h] ([] for none), "
                           f"not {value!r}")
    try:
        return parse_offsets(value)
    except DurationError as exc:
        raise ContentError(f"{where}: `reminders`: {exc}") from None


def _flag(where: _Where, name: str) -> bool:
    value = where.raw(name, default=False)
    if not isinstance(value, bool):
        raise ContentError(f"{where}: `{name}` must be true or false, not {value!r}")
    return value


# --- YAML with line numbers -------------------------------------------------------------------------------


class _LineDict(dict):  # type: ignore[type-arg]
    line: int = 0


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings remember the line they start on (for error messages)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _top_list(path: Path, key: str) -> list[_LineDict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContentError(
            f"{path}: not found; set FRONTDESK_CONTENT_DIR to the directory holding faq.yml and events.yml"
        ) from None
    data = _yaml(path, text)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ContentError(f"{path}:1: expected a top-level `{key}:` list")
    items = data[key]
    for index, item in enumerate(items):
        if not isinstance(item, _LineDict):
            raise ContentError(f"{path}: `{key}` item {index + 1} must be a mapping (key: value lines)")
    return items


def _yaml(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContentError(f"{path}{line}: not valid YAML: {problem}") from None


class _Where:
    """One item of a content file, with accessors that fail naming the file, line and field."""

    def __init__(self, path: Path, item: _LineDict) -> None:
        self.path = path
        self.item = item
        self.line = item.line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    def raw(self, name: str, default: Any = ...) -> Any:
        if name not in self.item:
            if default is ...:
                raise ContentError(f"{self}: `{name}` is missing")
            return default
        return self.item[name]

    def required_str(self, name: str) -> str:
        value = self.raw(name)
        if not isinstance(value, str) or not value.strip():
            raise ContentError(f"{self}: `{name}` must be non-empty text, not {value!r}")
        bad = next((c for c in value if ord(c) < 32 and c not in "\n\t"), None)
        if bad is not None:
            raise ContentError(f"{self}: `{name}` contains the control character {bad!r}; remove it")
        return value.strip()

    def optional_str(self, name: str) -> str:
        value = self.raw(name, default="")
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ContentError(f"{self}: `{name}` must be text, not {value!r}")
        return value.strip()

    def str_list(self, name: str, *, required: bool = True) -> list[str]:
        value = self.raw(name, default=... if required else [])
        if not isinstance(value, list):
            raise ContentError(f"{self}: `{name}` must be a list of texts, e.g. [a, b], not {value!r}")
        for v in value:
            if not isinstance(v, str) or not v.strip():
                raise ContentError(f"{self}: `{name}` item {v!r} must be non-empty text (quote numbers: \"500\")")
        if required and not value:
            raise ContentError(f"{self}: `{name}` must not be empty")
        return [v.strip() for v in value]

    def non_negative_int(self, name: str, *, default: int) -> int:
        value = self.raw(name, default=default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ContentError(f"{self}: `{name}` must be a whole number ≥ 0, not {value!r}")
        return value
