"""What must not be posted in public: e-mail addresses, phone numbers, order numbers, street addresses.

The bot never repeats a customer's words in a public reply (its public templates name nobody's details);
an agent typing a public reply can, by mistake.  The desk holds such a reply with a warning instead of
posting it (`desk/public_guard.py`).  The rule leans to holding: a false alarm costs one click, a leaked
address cannot be taken back (a deleted post has been read, and copied).

Order numbers follow the NLU's own idea of one (`nlu/anonymise.py`, `ORDER_NUMBER_PATTERNS`).
"""

from __future__ import annotations

import re

_URL = re.compile(r"(?:https?://|www\.)\S+")  # a link to the brand's DM page carries an account id, nobody's data
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# 8+ digits, with the separators people type: "+44 20 7946 0958", "(555) 010-4477".
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{6,}\d(?![\w-])")
_ORDER_NUMBER = re.compile(r"\b[A-Z]{1,3}-?\d{4,10}\b|#\d{4,12}\b|\b\d{6,12}\b", re.IGNORECASE)
_STREET_WORDS = (
    r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|court|ct|place|pl|square|sq|close|"
    r"crescent|terrace|gardens|way|strasse|straße|str|platz|weg|allee|gasse"
)
# "12 Elm Street", "221B Baker St", "Rheinsberger Str. 76", "Hauptstraße 5", "1 rue de la Paix".  The
# street's name must be capitalised: "order 88231 is on its way" is not an address.
_STREET = re.compile(
    rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Z][\w'-]*\s+){{1,3}}(?i:{_STREET_WORDS})\b\.?"
    rf"|\b[A-Z][\w'-]*\s+(?i:{_STREET_WORDS})\.?\s+\d{{1,5}}[A-Za-z]?\b"
    rf"|\b[A-Z][\w'-]*(?i:strasse|straße|str|platz|weg|allee|gasse)\.?\s+\d{{1,5}}[A-Za-z]?\b"
    rf"|\b\d{{1,5}},?\s+(?i:rue|calle|via)\s",
)
# UK postcodes ("SW1A 1AA"), US ZIP+4 ("94103-1234").
_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b|\b\d{5}-\d{4}\b")

_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an e-mail address", _EMAIL),
    ("a street address", _STREET),
    ("a postcode", _POSTCODE),
    ("a phone number", _PHONE),
    ("an order number", _ORDER_NUMBER),
)


def personal_data_in(text: str) -> list[str]:
    """The kinds of personal data `text` seems to hold ("an e-mail address", ...), in a fixed order."""
    found: list[str] = []
    rest = _URL.sub(" ", text)
    for kind, pattern in _KINDS:
        if pattern.search(rest):
            found.append(kind)
            rest = pattern.sub(" ", rest)  # an e-mail's digits are not also a phone number
    return found
