"""The word lists the router decides with (`content/words.yml`): anger, "that didn't help", "register me",
"a real person", "yes"/"no" to a confirmation, words about events, "keep me posted" and "stop".

Phrases match whole words, ignoring case and apostrophes, so the brand writes plain phrases instead of
regular expressions, and "didnt help" is read like "didn't help".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot import yaml_nodes

_APOSTROPHES = re.compile(r"['’‘`]")
_HANDLES = re.compile(r"(?<!\w)@\w{1,15}")  # "@brand stop" in a public post is "stop" said alone


class WordsError(ValueError):
    """words.yml is wrong; the message reads `<file>:<line>: <problem>`."""


def _normalise(text: str) -> str:
    return _APOSTROPHES.sub("", text.lower())


@dataclass(frozen=True)
class PhraseList:
    phrases: tuple[str, ...]

    def __post_init__(self) -> None:
        alternatives = "|".join(re.escape(_normalise(p)) for p in sorted(self.phrases, key=len, reverse=True))
        object.__setattr__(self, "_pattern", re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)") if self.phrases else None)
        # The same phrases, only at the start of the message (after any punctuation): "yes please", not
        # "I said yes to the other one".
        object.__setattr__(self, "_start", re.compile(rf"^\W*(?:{alternatives})(?!\w)") if self.phrases else None)

    def found_in(self, text: str) -> bool:
        pattern: re.Pattern[str] | None = self._pattern  # type: ignore[attr-defined]
        return pattern is not None and pattern.search(_normalise(text)) is not None

    def after_start(self, text: str) -> str | None:
        """What follows the phrase the message begins with, when it stands apart (the end, or punctuation
        after it: "five!", "five - lovely"); None otherwise."""
        pattern: re.Pattern[str] | None = self._start  # type: ignore[attr-defined]
        match = pattern.match(_normalise(text)) if pattern is not None else None
        if match is None:
            return None
        after = _normalise(text)[match.end():].lstrip()
        if after and after[0].isalnum():
            return None  # "one more thing": a word of a sentence, not an answer on its own
        # The match is on the normalised text (apostrophes gone): cut the original at the same word count.
        return " ".join(text.split()[len(match.group(0).split()):])

    def ends(self, text: str) -> list[int]:
        """Where each occurrence of a phrase ends in the normalised text (see `_normalise`)."""
        pattern: re.Pattern[str] | None = self._pattern  # type: ignore[attr-defined]
        return [] if pattern is None else [m.end() for m in pattern.finditer(_normalise(text))]

    def starts(self, text: str) -> bool:
        """The message begins with one of the phrases."""
        pattern: re.Pattern[str] | None = self._start  # type: ignore[attr-defined]
        return pattern is not None and pattern.match(_normalise(text)) is not None


@dataclass(frozen=True)
class Words:
    angry: PhraseList
    exclamations: int
    shouting_share: float
    did_not_help_phrases: PhraseList
    did_not_help_alone: tuple[str, ...]
    register: PhraseList
    person: PhraseList
    yes: PhraseList
    no: PhraseList
    about_events: PhraseList
    opt_in_phrases: PhraseList
    opt_in_alone: tuple[str, ...]
    opt_out_phrases: PhraseList
    opt_out_alone: tuple[str, ...]
    # still_a_problem: a problem named among thanks or praise (a support message, not small talk).
    problem_phrases: PhraseList = PhraseList(())
    contrast: PhraseList = PhraseList(())
    contrast_then: PhraseList = PhraseList(())
    contrast_within: int = 40
    # Listening's sentiment (bot/listening.py): phrases and the intents that mark a post negative / positive.
    negative: PhraseList = PhraseList(())
    positive: PhraseList = PhraseList(())
    negative_intents: tuple[str, ...] = ()
    positive_intents: tuple[str, ...] = ()

    def sentiment(self, text: str, intent: str | None) -> str:
        """negative | neutral | positive for a post: its intent, anger, then the word lists."""
        if intent in self.negative_intents or self.is_angry(text) or self.negative.found_in(text):
            return "negative"
        if intent in self.positive_intents or self.positive.found_in(text):
            return "positive"
        return "neutral"
    # "five", "four stars": the CSAT score a message begins with, highest score first on a tie of length.
    csat_scores: tuple[tuple[int, PhraseList], ...] = ()

    def is_angry(self, text: str) -> bool:
        """Words of anger, a run of "!" or shouting (mostly capitals) mark a message for high priority."""
        if self.angry.found_in(text) or "!" * self.exclamations in text:
            return True
        letters = [c for c in text if c.isalpha()]
        return len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) > self.shouting_share

    def names_a_problem(self, text: str) -> bool:
        """Thanks or praise around a problem ("thanks, but it still isn't fixed"): `still_a_problem` in words.yml."""
        if self.problem_phrases.found_in(text):
            return True
        normalised = _normalise(text)
        return any(self.contrast_then.found_in(normalised[end:end + self.contrast_within])
                   for end in self.contrast.ends(normalised))

    def did_not_help(self, text: str) -> bool:
        if self.did_not_help_phrases.found_in(text):
            return True
        return _bare(text) in self.did_not_help_alone

    def says_stop(self, text: str) -> bool:
        """The customer opts out of announcements ("stop", "unsubscribe me"): `opt_out` in words.yml."""
        return self.opt_out_phrases.found_in(text) or _bare(_HANDLES.sub(" ", text)) in self.opt_out_alone

    def says_keep_me_posted(self, text: str) -> bool:
        """The customer opts in to announcements ("keep me posted", "subscribe"): `opt_in` in words.yml."""
        return self.opt_in_phrases.found_in(text) or _bare(_HANDLES.sub(" ", text)) in self.opt_in_alone

    def asks_to_register(self, text: str) -> bool:
        return self.register.found_in(text)

    def asks_for_person(self, text: str) -> bool:
        """Words that ask for a person ("speak to someone", "a callback", "a real human", "your manager")."""
        return self.person.found_in(text)

    def says_yes(self, text: str) -> bool:
        """The answer to "shall I …? (yes / no)" begins with a yes."""
        return self.yes.starts(text)

    def says_no(self, text: str) -> bool:
        return self.no.starts(text)

    def csat_score_word(self, text: str) -> tuple[int, str] | None:
        """The score a message begins with in words ("five - lovely"), and the words after it."""
        for score, phrases in self.csat_scores:
            rest = phrases.after_start(text)
            if rest is not None:
                return score, rest
        return None

    def is_about_events(self, text: str) -> bool:
        """A question about events in general ("any webinars coming up?"), not about something else."""
        return self.about_events.found_in(text)


def _bare(text: str) -> str:
    """The message without punctuation and extra spaces, for the lists of words said alone."""
    return re.sub(r"[\s.!?,]+", " ", _normalise(text)).strip()


def load_words(path: Path) -> Words:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WordsError(f"{path}: not found; every content folder needs words.yml (copy the shipped one)") from None
    node = yaml_nodes.compose(path, text, WordsError)
    top = _Section(path, node, "the file", (
        "angry", "did_not_help", "register", "person", "confirm", "about_events", "sentiment", "csat_scores",
        "opt_in", "opt_out", "still_a_problem"))
    angry = _Section(path, top.node("angry"), "angry", ("phrases", "exclamations", "shouting_share"))
    help_ = _Section(path, top.node("did_not_help"), "did_not_help", ("phrases", "alone"))
    register = _Section(path, top.node("register"), "register", ("phrases",))
    person = _Section(path, top.node("person"), "person", ("phrases",))
    confirm = _Section(path, top.node("confirm"), "confirm", ("yes", "no"))
    about_events = _Section(path, top.node("about_events"), "about_events", ("phrases",))
    sentiment = _Section(path, top.node("sentiment"), "sentiment",
                         ("negative", "positive", "negative_intents", "positive_intents"))
    scores = _Section(path, top.node("csat_scores"), "csat_scores", ("1", "2", "3", "4", "5"))
    opt_in = _Section(path, top.node("opt_in"), "opt_in", ("phrases", "alone"))
    opt_out = _Section(path, top.node("opt_out"), "opt_out", ("phrases", "alone"))
    problem = _Section(path, top.node("still_a_problem"), "still_a_problem", ("phrases", "contrast", "then", "within"))
    within = problem.scalar("within")
    if not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= 200:
        raise WordsError(f"{path}:{problem.line('within')}: `still_a_problem.within` must be a whole number of "
                         "characters from 1 to 200, e.g. 40")
    exclamations = angry.scalar("exclamations")
    if not isinstance(exclamations, int) or isinstance(exclamations, bool) or exclamations < 2:
        raise WordsError(f"{path}:{angry.line('exclamations')}: `angry.exclamations` must be a whole number ≥ 2")
    share = angry.scalar("shouting_share")
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 < share <= 1:
        raise WordsError(f"{path}:{angry.line('shouting_share')}: `angry.shouting_share` must be a number in "
                         "(0, 1], e.g. 0.7")
    return Words(
        angry=PhraseList(angry.phrases("phrases")),
        exclamations=exclamations,
        shouting_share=float(share),
        did_not_help_phrases=PhraseList(help_.phrases("phrases")),
        did_not_help_alone=tuple(_normalise(p) for p in help_.phrases("alone")),
        register=PhraseList(register.phrases("phrases")),
        person=PhraseList(person.phrases("phrases")),
        yes=PhraseList(confirm.phrases("yes")),
        no=PhraseList(confirm.phrases("no")),
        about_events=PhraseList(about_events.phrases("phrases")),
        negative=PhraseList(sentiment.phrases("negative")),
        positive=PhraseList(sentiment.phrases("positive")),
        negative_intents=sentiment.phrases("negative_intents"),
        positive_intents=sentiment.phrases("positive_intents"),
        csat_scores=tuple((int(key), PhraseList(scores.phrases(key))) for key in ("5", "4", "3", "2", "1")),
        opt_in_phrases=PhraseList(opt_in.phrases("phrases")),
        opt_in_alone=tuple(_bare(p) for p in opt_in.phrases("alone")),
        opt_out_phrases=PhraseList(opt_out.phrases("phrases")),
        opt_out_alone=tuple(_bare(p) for p in opt_out.phrases("alone")),
        problem_phrases=PhraseList(problem.phrases("phrases")),
        contrast=PhraseList(problem.phrases("contrast")),
        contrast_then=PhraseList(problem.phrases("then")),
        contrast_within=within,
    )


class _Section:
    def __init__(self, path: Path, node: yaml.Node | None, name: str, keys: tuple[str, ...]) -> None:
        self.path, self.name = path, name
        if not isinstance(node, yaml.MappingNode):
            line = node.start_mark.line + 1 if node is not None else 1
            raise WordsError(f"{path}:{line}: {name} must be a mapping with {', '.join(keys)}")
        self.items = {str(k.value): (k.start_mark.line + 1, v) for k, v in node.value}
        for key, (line, _) in self.items.items():
            if key not in keys:
                raise WordsError(f"{path}:{line}: unknown key `{key}` in {name}; use {', '.join(keys)}")
        for key in keys:
            if key not in self.items:
                raise WordsError(f"{path}:{node.start_mark.line + 1}: {name}: `{key}` is missing")

    def node(self, key: str) -> yaml.Node:
        return self.items[key][1]

    def line(self, key: str) -> int:
        return self.items[key][0]

    def scalar(self, key: str) -> Any:
        return yaml.safe_load(yaml.serialize(self.node(key)))

    def phrases(self, key: str) -> tuple[str, ...]:
        node = self.node(key)
        where = f"{self.path}:{node.start_mark.line + 1}"
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise WordsError(f"{where}: `{self.name}.{key}` must be a non-empty list of phrases, e.g. [a, b c]")
        out = []
        for item in node.value:
            value = yaml.safe_load(yaml.serialize(item))
            if not isinstance(value, str) or not value.strip():
                raise WordsError(
                    f"{self.path}:{item.start_mark.line + 1}: `{self.name}.{key}`: {value!r} is not a phrase; "
                    "quote words YAML reads otherwise (\"no\", \"yes\", \"500\")"
                )
            out.append(" ".join(value.split()))
        return tuple(out)
