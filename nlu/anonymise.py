"""Anonymising customers' texts before they become training data.

One function for every way a real message enters the training data: the IBM customer-care tweets when
`nlu/sources/build_training_data.py` builds the corpora, and agents' corrections when
`frontdesk nlu export-corrections` writes them (desk/corrections.py).  Stdlib only: the build script runs
under a bare `python3`.
"""

from __future__ import annotations

import re

_HANDLE = re.compile(r"(?<![\w@])@\w{1,30}")
_URL = re.compile(r"(?:https?:\s?//|www\.)\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\w)(?:\+?\d[\d\s().-]{7,}\d)(?!\w)")
_LONG_ID = re.compile(r"\b[A-Za-z0-9_-]{20,}\b")

# The NLU project's own idea of an order number (nlu/project/data/entities.yml, `regex: order_number`;
# tests/test_privacy.py keeps the two equal).  Case-insensitive here: a lower-case "ab-12345" is as much
# someone's order as "AB-12345", and anonymising too much costs a training example nothing.
ORDER_NUMBER_PATTERNS = (r"\b[A-Z]{1,3}-?\d{4,10}\b", r"\b\d{6,12}\b", r"#\d{4,12}\b")
_ORDER_NUMBER = re.compile("|".join(ORDER_NUMBER_PATTERNS), re.IGNORECASE)


def anonymise_tweet(text: str) -> str:
    """Handles -> @Brand (addressee) / @user, links, e-mails, phone numbers -> placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _URL.sub("https://t.co/x", text)
    text = _PHONE.sub("[phone]", text)
    text = _LONG_ID.sub("[id]", text)
    out, leading = [], True
    for tok in re.split(r"(\s+)", text):
        if _HANDLE.fullmatch(tok.rstrip(":,.")):
            out.append(("@Brand" if leading else "@user") + tok[len(tok.rstrip(":,.")):])
            continue
        if tok.strip():
            leading = False
        out.append(_HANDLE.sub("@user", tok))
    text = "".join(out)
    return re.sub(r"\s+", " ", text).strip()


def anonymise_message(text: str) -> str:
    """`anonymise_tweet`, and order numbers -> `[order]`: what a customer writes to a brand's support.

    The corpora build keeps to `anonymise_tweet`, so the committed corpus files stay reproducible; a
    shop's own customers quote their order numbers all the time.
    """
    return _ORDER_NUMBER.sub("[order]", anonymise_tweet(text))


_WHITESPACE = re.compile(r"\s+")


def training_example(text: str) -> str:
    """One anonymised line per example (a Rasa example is one line), with no accidental entity annotation.

    Square brackets become parentheses, as in the corpora: Rasa reads "[text](entity)" as an annotation,
    and the placeholders then read "(email)", "(phone)", as they do in the corpus files.
    """
    text = anonymise_message(_WHITESPACE.sub(" ", text).strip())
    return text.replace("[", "(").replace("]", ")")
