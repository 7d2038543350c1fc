"""What text the store accepts: everything a customer can type, faithfully, or a clear refusal.

PostgreSQL TEXT cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8 at all; rather than
store something other than what was written, such text is refused on both databases alike.
"""

from __future__ import annotations

from storage.errors import InvalidText

MAX_TEXT_CHARS = 100_000


def validate_text(text: object, *, allow_empty: bool, field: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidText(f"{field} must be a string, not {type(text).__name__}")
    if not allow_empty and not text.strip():
        raise InvalidText(f"{field} is empty: write something to send")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidText(f"{field} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    if "\x00" in text:
        raise InvalidText(f"{field} contains a NUL character (\\x00) at offset {text.index(chr(0))}; remove it")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidText(
            f"{field} contains a lone surrogate at offset {exc.start} that no database can store; "
            "send valid Unicode"
        ) from None
    return text
