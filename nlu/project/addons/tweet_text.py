"""Tweet text normalisation rules, pure standard library (no Rasa), used by TweetNormalizer.

Kept apart from the Rasa component so the rules can be tested without a Rasa install:
`Normalizer()(text)` returns (normalised token, start, end) triples whose spans point into the
original text.  See tweet_normalizer.py for what each rule is for.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Dict, List, Optional

URL_TOKEN = "__url__"
USER_TOKEN = "__user__"
EMAIL_TOKEN = "__email__"
HANDLE_ONLY_TOKEN = "__handle__"
QMARK_TOKEN = "__qmark__"

_URL = r"(?:https?://|www\.)\S+|https?:\s?//\S+"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_HANDLE = r"(?<![\w@])@\w{1,30}"
_HASHTAG = r"(?<![\w#])#\w+"
_ENTITY = r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});"
_WORD = r"\w+(?:['’]\w+)*"
_EMOTICON = r"(?:<3+|</3|[:;=xX8]-?[)(\]\[DdPpOo/\\|*3]+|[)(]-?[:;=])(?!\w)"
_QMARK = r"\?+"
_TOKEN_RE = re.compile(
    "|".join(
        f"(?P<{name}>{pattern})"
        for name, pattern in (
            ("url", _URL),
            ("email", _EMAIL),
            ("handle", _HANDLE),
            ("hashtag", _HASHTAG),
            ("entity", _ENTITY),
            ("emoticon", _EMOTICON),
            ("word", _WORD),
            ("qmark", _QMARK),
            ("symbol", r"[^\w\s]"),
        )
    )
)
_ELONGATION = re.compile(r"(\D)\1{2,}")
_CAMEL = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z]|\b|\d)|[A-Z]?[a-z]+|[A-Z]+|\d+")

_EMOTICON_MOODS = (
    (re.compile(r"^</3$"), "__emo_neg__"),
    (re.compile(r"^<3+$"), "__emo_love__"),
    (re.compile(r"^[:;=xX8]-?[)\]Dd*3]+$|^[(]-?[:;=]$"), "__emo_pos__"),
    (re.compile(r"^[:;=xX8]-?[Pp]+$"), "__emo_pos__"),
    (re.compile(r"^[:;=xX8]-?[(\[/\\|]+$|^[)]-?[:;=]$"), "__emo_neg__"),
)
# Emoji grouped by the mood they usually carry in customer messages.
_EMOJI_MOODS: Dict[str, str] = {}
for _chars, _mood in (
    ("😀😃😄😁😆😊🙂😉😎🤗👍👌🙌👏💯🎉🥳✨🔥⭐🌟😇☺🤩😋😜😝😛✅🆒", "__emo_pos__"),
    ("❤💕💖💗💓💞💘💝😍🥰😘💙💚💛💜🧡🖤🤍♥", "__emo_love__"),
    ("😂🤣😅😹", "__emo_laugh__"),
    ("😞😔😟😕🙁☹😣😖😫😩😢😭😿💔😓😥😰😨😱🥺😪😬👎❌⚠🚫🤦🙄😒😑😐🤷😤", "__emo_neg__"),
    ("😡😠🤬👿💢🖕", "__emo_angry__"),
    ("🙏", "__emo_please__"),
):
    for _c in _chars:
        _EMOJI_MOODS[_c] = _mood


def _emoji_mood(char: str) -> Optional[str]:
    """The mood token for one emoji character, or None when it is not an emoji."""
    if char in _EMOJI_MOODS:
        return _EMOJI_MOODS[char]
    if unicodedata.category(char) == "So":
        return "__emo_other__"
    return None


def _squeeze(word: str) -> str:
    """Squeeze elongations ("sooooo" -> "soo") so they meet the normal spelling halfway."""
    return _ELONGATION.sub(r"\1\1", word)


class Normalizer:
    """Turns a text into (normalised token text, start, end) triples; pure, no Rasa types."""

    def __init__(self, lowercase: bool = True, keep_question_marks: bool = True) -> None:
        self.lowercase = lowercase
        self.keep_question_marks = keep_question_marks

    def __call__(self, text: str) -> List[tuple[str, int, int]]:
        out: List[tuple[str, int, int]] = []
        leading = True  # still inside the run of addressee handles at the start
        for match in _TOKEN_RE.finditer(text):
            kind = match.lastgroup
            raw = match.group()
            start, end = match.span()
            if kind == "handle":
                if not leading:
                    out.append((USER_TOKEN, start, end))
                continue
            if kind != "symbol" or raw not in ".,:;-–—":
                leading = False
            if kind == "url":
                out.append((URL_TOKEN, start, end))
            elif kind == "email":
                out.append((EMAIL_TOKEN, start, end))
            elif kind == "hashtag":
                out.extend(self._hashtag(raw, start))
            elif kind == "entity":
                decoded = html.unescape(raw)
                if decoded != raw:
                    out.extend(self._decoded(decoded, start, end))
            elif kind == "emoticon":
                out.append((self._emoticon(raw), start, end))
            elif kind == "word":
                out.append((self._case(_squeeze(raw)), start, end))
            elif kind == "qmark":
                if self.keep_question_marks:
                    out.append((QMARK_TOKEN, start, end))
            else:  # one non-word character: emoji or punctuation
                mood = _emoji_mood(raw)
                if mood is not None:
                    if not out or out[-1][0] != mood or out[-1][2] != start:
                        out.append((mood, start, end))
                    else:  # a run of the same mood is one token ("😡😡😡")
                        out[-1] = (mood, out[-1][1], end)
        return self._join_entity_heart(out)

    def _case(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def _hashtag(self, raw: str, start: int) -> List[tuple[str, int, int]]:
        body = raw[1:]
        if any(ch.isdigit() for ch in body):  # "#A1234" is an order number, not words
            return [(self._case(body), start, start + len(raw))]
        parts = [(m.group(), m.start() + 1) for m in _CAMEL.finditer(body)] or [(body, 1)]
        return [(self._case(_squeeze(p)), start + off, start + off + len(p)) for p, off in parts]

    def _decoded(self, decoded: str, start: int, end: int) -> List[tuple[str, int, int]]:
        if decoded in "<>":
            return [("__lt__" if decoded == "<" else "__gt__", start, end)]
        mood = _emoji_mood(decoded) if len(decoded) == 1 else None
        return [(mood, start, end)] if mood else []

    def _emoticon(self, raw: str) -> str:
        for pattern, mood in _EMOTICON_MOODS:
            if pattern.match(raw):
                return mood
        return "__emo_other__"

    @staticmethod
    def _join_entity_heart(tokens: List[tuple[str, int, int]]) -> List[tuple[str, int, int]]:
        """`&lt;3` arrives as an encoded '<' followed by the word '3': make it the heart it was."""
        out: List[tuple[str, int, int]] = []
        for tok in tokens:
            if out and out[-1][0] == "__lt__" and out[-1][2] == tok[1] and tok[0] == "3":
                out[-1] = ("__emo_love__", out[-1][1], tok[2])
            else:
                out.append(tok)
        return [t for t in out if t[0] not in ("__lt__", "__gt__")]
