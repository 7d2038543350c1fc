"""What text the store accepts: everything a customer can type, faithfully, or a clear refusal.

PostgreSQL TEXT cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8 at all; rather than
store something other than what was written, such text is refused on both databases alike.  The one
exception is what a platform hands the channels (`storable_text`): that is repaired and kept, since
refusing it would lose the message and every other one in the same page.
"""

from __future__ import annotations

from storage.errors import InvalidText

MAX_TEXT_CHARS = 100_000


def unstorable_part(text: str) -> str | None:
    """What in `text` no database can store ("a NUL character (\\x00)", "a lone surrogate"), or None."""
    if "\x00" in text:
        return "a NUL character (\\x00)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    return None


def storable_text(text: str, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """`text` repaired so that it can be stored: NUL removed, lone surrogates as U+FFFD, cut to `max_chars`.

    For what platforms hand us (a sender's name, a message): refusing it would lose the message and stall
    the page it came in, so it is kept, as close to what was sent as the store allows.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16, a high and a low surrogate that arrived as two code points become the one
        # character they encode; only the truly lone ones become U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text[:max_chars]


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
