"""How X counts a post's length (the 280 limit): one function for the bot's wordings and the desk's posts."""

from __future__ import annotations

import re
import unicodedata


def x_weighted_length(text: str) -> int:
    """The length X counts (twitter-text v3: a URL is 23, CJK and emoji 2, the rest 1)."""
    text = unicodedata.normalize("NFC", text)
    total = 0
    pos = 0
    for match in re.finditer(r"https?://\S+", text, re.IGNORECASE):
        total += sum(_weight(c) for c in text[pos:match.start()]) + 23
        pos = match.end()
    return total + sum(_weight(c) for c in text[pos:])


def _weight(ch: str) -> int:
    cp = ord(ch)
    light = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return 1 if any(lo <= cp <= hi for lo, hi in light) else 2

