"""What the desk takes from a request before a route sees it: ids the store can hold, text it can store.

- `RowId`: every id in a path, form or body.  Row ids are INTEGER columns, which on PostgreSQL hold at most
  2^31 - 1 (asyncpg refuses a larger value outright, SQLite anything past 2^63), so a larger id is a 422 in
  the API, and a 404 page on the HTML desk (`desk.app`), never a 500.
- `refuse_unstorable_text`: a dependency of the desk's routers.  A NUL (PostgreSQL TEXT cannot hold one)
  or a lone surrogate (no database can store, log or even answer one) anywhere in the query string, a form
  or a JSON body, keys included, is a 422 naming where, before the route or the database sees it.
"""

from __future__ import annotations

from email.message import Message as _ContentType
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field
from starlette.datastructures import FormData

from storage.text import unstorable_part

MAX_ROW_ID = 2**31 - 1  # storage/migrations: `sa.Integer()` primary keys, PostgreSQL's int4
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID, examples=[1])]

_Loc = tuple[str | int, ...]
_MAX_ERRORS = 20  # enough to show what is wrong; a body full of bad strings gets no answer as large as it


async def refuse_unstorable_text(request: Request) -> None:
    """A router dependency: a 422 for unstorable text in the query string, a form or a JSON body.

    It runs after FastAPI has read the body (within its limits) and before the route's own dependencies
    (authentication) and the route, so it reads nothing twice.
    """
    errors = await unstorable_inputs(request)
    if errors:
        raise RequestValidationError(errors)


async def unstorable_inputs(request: Request) -> list[dict[str, Any]]:
    """One validation error per query parameter, form field or JSON value that holds unstorable text."""
    errors: list[dict[str, Any]] = []
    for key, value in request.query_params.multi_items():
        if _check(("query",), key, errors, what="a parameter's name"):
            _check(("query", key), value, errors)
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return errors  # the route takes no body: whatever was sent is never read
    body = await _parsed_body(request)
    if isinstance(body, FormData):
        for key, value in body.multi_items():
            if _check(("body",), key, errors, what="a field's name") and isinstance(value, str):
                _check(("body", key), value, errors)
    else:
        errors.extend(_json_errors(body))
    return errors[:_MAX_ERRORS]


async def _parsed_body(request: Request) -> Any:
    """The body as FastAPI parsed it for the route: Starlette keeps the form or JSON it read, so nothing
    is parsed twice, and a body FastAPI did not read as JSON is not parsed here either."""
    header = _ContentType()
    header["content-type"] = request.headers.get("content-type", "")
    if header.get_content_type() in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return await request.form()
    subtype = header.get_content_subtype()
    if header.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return None
    try:
        return await request.json()
    except (ValueError, RecursionError):
        return None  # FastAPI refused it already; a route never sees it


def _json_errors(body: Any) -> list[dict[str, Any]]:
    """Walk the parsed body without recursion (it may be nested as deep as the parser allowed)."""
    errors: list[dict[str, Any]] = []
    stack: list[tuple[_Loc, Any]] = [(("body",), body)]
    while stack and len(errors) < _MAX_ERRORS:
        loc, value = stack.pop()
        if isinstance(value, str):
            _check(loc, value, errors)
        elif isinstance(value, dict):
            children = [((*loc, k), v) for k, v in value.items() if _check(loc, k, errors, what="a key")]
            stack.extend(reversed(children))  # reversed: popped in the body's own order
        elif isinstance(value, list):
            stack.extend(reversed([((*loc, i), item) for i, item in enumerate(value)]))
    return errors


def _check(loc: _Loc, text: str, errors: list[dict[str, Any]], *, what: str = "the value") -> bool:
    """Append an error when `text` cannot be stored; True when it can."""
    problem = unstorable_part(text)
    if problem is None:
        return True
    # `loc` never holds the offending text itself (a bad key names the object that holds it): the answer
    # must be encodable.
    errors.append({
        "loc": loc,
        "msg": f"{what} contains {problem}, which cannot be stored; send valid Unicode without NUL",
        "type": "string_unstorable",
    })
    return False
