"""Full-text search over message text, with the same rules on PostgreSQL and SQLite.

The rules an agent can rely on, whichever store runs underneath:
- every word typed must occur in the message, as a word or the start of one ("refun" finds "refund");
- case does not matter; punctuation separates words the way each engine's own tokenizer does, so an
  order number "A-10293", a handle or an e-mail address is found by typing it as it was written;
- results are ordered newest first (never by an engine-specific relevance score, which would differ).

PostgreSQL matches against a GIN index on `to_tsvector('simple', text)` (migration 0007); SQLite against
the FTS5 table `messages_fts` that triggers keep in step with `messages`.  Known difference: SQLite also
folds accents ("cafe" finds "café"), PostgreSQL's 'simple' configuration does not.

A query is never passed to either engine's query syntax as typed: it is cut into words, each quoted, so
nothing an agent types (quotes, `NEAR`, `&`, `:*`) can make the search fail.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, bindparam, text

from storage.models import Message

# Schema objects the migrations create that the models do not describe (autogenerate must leave them be).
_SEARCH_INDEX = "ix_messages_text_search"
_FTS_TABLE = "messages_fts"

MAX_QUERY_WORDS = 8
MAX_WORD_CHARS = 64
_HAS_WORD = re.compile(r"\w", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The words of a query as typed (split on spaces), those that hold a letter or digit, at most 8."""
    words = [w[:MAX_WORD_CHARS] for w in query.split() if _HAS_WORD.search(w)]
    return words[:MAX_QUERY_WORDS]


def text_matches(dialect: str, query: str) -> ColumnElement[bool] | None:
    """A condition on `messages` that holds where the text matches every word of `query` (None: no words)."""
    words = query_words(query)
    if not words:
        return None
    if dialect == "postgresql":
        # Each engine cuts the typed words with the tokenizer that built its index, then every lexeme is
        # matched as a prefix.  The subquery runs once (it does not depend on the row).
        condition = text(
            "to_tsvector('simple', messages.text) @@ ("
            "SELECT to_tsquery('simple', string_agg(quote_literal(lexeme) || ':*', ' & ')) "
            "FROM unnest(to_tsvector('simple', :search_words)))"
        ).bindparams(bindparam("search_words", " ".join(words)))
        return condition  # type: ignore[return-value]
    fts_query = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
    rowids = text(f"SELECT rowid FROM {_FTS_TABLE} WHERE {_FTS_TABLE} MATCH :search_fts").bindparams(
        bindparam("search_fts", fts_query)
    )
    return Message.id.in_(rowids)  # type: ignore[union-attr]


def include_in_autogenerate(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's `include_object`: hide the search index and FTS5's tables from model comparison."""
    if name is None:
        return True
    return name != _SEARCH_INDEX and not name.startswith(_FTS_TABLE)


def optimize_sql(dialect: str) -> str | None:
    """After erasing text on SQLite, merge FTS5's segments so no erased word survives in its index."""
    if dialect == "postgresql":
        # Like the old row version itself, the old index entries stay on disk until (auto)vacuum: the
        # same as for every other erased column (docs/privacy.md).
        return None
    return f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}) VALUES ('optimize')"

