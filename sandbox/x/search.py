"""Recent search (`GET /2/tweets/search/recent`): X's query language, the part the emulator evaluates.

What X documents (xdevplatform/docs `x-api/posts/search/integrate/build-a-query.mdx` and `operators.mdx`,
read through ../shared/specs/x-limits-and-prices.md):

- a query is at most 512 characters on the self-serve tiers (4,096 on Enterprise);
- terms are ANDed by a space, `OR` between terms, `-` negates, parentheses group, `"…"` is an exact phrase;
- standalone operators (keywords, phrases, `#hashtag`, `@mention`, `from:`, `to:`, `conversation_id:`) may be
  used alone; conjunction-required ones (`is:`, `has:`, `lang:`) need at least one standalone term beside them;
- an operator X does not know, or one not available to the tier, is a 400 naming it.

The emulator evaluates the operators in `EVALUATED` and answers the rest of X's real operators with the same
400 (rather than matching them wrongly); the app's content check (`bot/listening_rules.py`) allows exactly
these, so a rule that passes it is one the emulator and X both accept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.x import errors

MAX_QUERY_CHARS = 512  # self-serve recent search (build-a-query.mdx, "Query limitations")
MAX_QUERY_CHARS_ENTERPRISE = 4096
WINDOW_S = 7 * 24 * 3600  # recent search serves the last 7 days (search/introduction.mdx)

# Operators the emulator evaluates, "name:" ones by name; the bare forms (keyword, "phrase", #tag, @user)
# are always there.
EVALUATED_NAMED = ("from", "to", "conversation_id", "is", "has", "lang")
IS_VALUES = ("retweet", "reply", "quote")
HAS_VALUES = ("links", "mentions", "hashtags")
CONJUNCTION_REQUIRED = ("is", "has", "lang")
# X's other operators (operators.mdx): known to X, not evaluated here.
KNOWN_ELSEWHERE = (
    "url", "retweets_of", "context", "entity", "list", "place", "place_country", "point_radius",
    "bounding_box", "sample", "in_reply_to_tweet_id", "retweets_of_tweet_id", "quotes_of_tweet_id",
    "url_title", "url_description", "followers_count", "tweets_count", "following_count", "listed_count",
    "source", "bio", "bio_name", "bio_location", "nullcast",
)
_TOKEN = re.compile(r'\s*(-?)("([^"]*)"|\(|\)|[^\s()"]+)')
_WORD = re.compile(r"[\w']+", re.UNICODE)


@dataclass(frozen=True)
class Post:
    """What a query looks at in one post."""

    text: str
    author_username: str
    in_reply_to_username: str | None
    conversation_id: str
    is_reply: bool
    is_quote: bool
    lang: str = "en"


Matcher = Callable[[Post], bool]


def _invalid(query: str, message: str) -> errors.XApiError:
    return errors.invalid_request(
        f"There were errors processing your request: {message}", {"query": [query]}
    )


def compile_query(query: str, *, max_chars: int = MAX_QUERY_CHARS) -> Matcher:
    """A predicate for `query`, or X's 400 naming what is wrong with it."""
    if not query.strip():
        raise errors.invalid_request("The `query` query parameter can not be empty", {"query": [query]})
    if len(query) > max_chars:
        raise _invalid(query, f"Query length exceeds {max_chars} characters (length {len(query)})")
    parser = _Parser(query)
    matcher, standalone = parser.parse_or()
    if parser.pos < len(parser.tokens):
        raise _invalid(query, f"Unbalanced parentheses (at position {parser.tokens[parser.pos][2] + 1})")
    if not standalone:
        raise _invalid(
            query,
            "Ambiguous use of is:, has: or lang: as a standalone operator. These operators must be used in "
            "conjunction with at least one standalone operator, e.g. a keyword (at position 1)",
        )
    return matcher


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens: list[tuple[str, str, int]] = []  # (negation "-"/"", token, position)
        pos = 0
        while pos < len(query):
            m = _TOKEN.match(query, pos)
            if m is None or not m.group(2):
                if query[pos:].strip() == "":
                    break
                raise _invalid(query, f'Unbalanced quotes (at position {pos + 1})')
            self.tokens.append((m.group(1), m.group(2), m.start(2)))
            pos = m.end()
        self.pos = 0

    def parse_or(self) -> tuple[Matcher, bool]:
        parts = [self.parse_and()]
        while self.pos < len(self.tokens) and self.tokens[self.pos][:2] == ("", "OR"):
            self.pos += 1
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        matchers = [m for m, _ in parts]
        return (lambda post: any(m(post) for m in matchers)), all(s for _, s in parts)

    def parse_and(self) -> tuple[Matcher, bool]:
        parts: list[tuple[Matcher, bool]] = []
        while self.pos < len(self.tokens):
            neg, token, at = self.tokens[self.pos]
            if token == ")" or (token == "OR" and not neg):
                break
            self.pos += 1
            if token == "(":
                inner, standalone = self.parse_or()
                if self.pos >= len(self.tokens) or self.tokens[self.pos][1] != ")":
                    raise _invalid(self.query, f"Unbalanced parentheses (at position {at + 1})")
                self.pos += 1
            else:
                inner, standalone = _term(self.query, token, at)
            if neg:
                positive = inner
                inner = lambda post, m=positive: not m(post)  # noqa: E731
                standalone = False  # a negation alone matches nearly everything: X refuses it too
            parts.append((inner, standalone))
        if not parts:
            where = self.tokens[self.pos][2] + 1 if self.pos < len(self.tokens) else len(self.query)
            raise _invalid(self.query, f"Expected a term (at position {where})")
        matchers = [m for m, _ in parts]
        return (lambda post: all(m(post) for m in matchers)), any(s for _, s in parts)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _term(query: str, token: str, at: int) -> tuple[Matcher, bool]:
    if token.startswith('"'):
        phrase = _words(token.strip('"'))
        if not phrase:
            raise _invalid(query, f"Empty phrase (at position {at + 1})")
        return (lambda post: _contains_run(_words(post.text), phrase)), True
    if token.startswith("#") and len(token) > 1:
        tag = token.lower()
        return (lambda post: tag in _hashtags(post.text)), True
    if token.startswith("@") and len(token) > 1:
        name = token[1:].lower()
        return (lambda post: name in _mentions(post.text)), True
    name, colon, value = token.partition(":")
    if colon and re.fullmatch(r"[a-z_]+", name):
        return _operator(query, name, value, at)
    word = token.lower()
    return (lambda post: _contains_run(_words(post.text), _words(word) or [word])), True


def _operator(query: str, name: str, value: str, at: int) -> tuple[Matcher, bool]:
    if name not in EVALUATED_NAMED:
        if name in KNOWN_ELSEWHERE:
            detail = "Operator is not available in the sandbox's emulation of recent search"
        else:
            detail = "Operator is not available in current product or product packaging"
        raise _invalid(query, f"Reference to invalid operator '{name}'. {detail}. (at position {at + 1})")
    if not value:
        raise _invalid(query, f"The operator '{name}:' needs a value (at position {at + 1})")
    low = value.lower()
    if name == "from":
        return (lambda post: post.author_username.lower() == low.lstrip("@")), True
    if name == "to":
        return (lambda post: (post.in_reply_to_username or "").lower() == low.lstrip("@")), True
    if name == "conversation_id":
        return (lambda post: post.conversation_id == value), True
    if name == "lang":
        return (lambda post: post.lang == low), False
    allowed = IS_VALUES if name == "is" else HAS_VALUES
    if low not in allowed:
        raise _invalid(query, f"Reference to invalid operator '{name}:{value}' (at position {at + 1})")
    checks: dict[str, Matcher] = {
        "retweet": lambda post: post.text.startswith("RT @"),
        "reply": lambda post: post.is_reply,
        "quote": lambda post: post.is_quote,
        "links": lambda post: re.search(r"https?://", post.text) is not None,
        "mentions": lambda post: bool(_mentions(post.text)),
        "hashtags": lambda post: bool(_hashtags(post.text)),
    }
    return checks[low], False


def _contains_run(words: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(words[i : i + n] == run for i in range(len(words) - n + 1))


def _hashtags(text: str) -> set[str]:
    return {m.lower() for m in re.findall(r"(?<![\w#])#\w+", text)}


def _mentions(text: str) -> set[str]:
    return {m.lower() for m in re.findall(r"(?<![\w@])@([A-Za-z0-9_]{1,15})", text)}
