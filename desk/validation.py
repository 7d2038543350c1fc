"""Validation errors, the same for every FastAPI app of Frontdesk: where and what, never the input.

FastAPI's default 422 body echoes each refused value (`input`) and pydantic's `ctx` back to the client: a
200 MB body came back whole, and a password with a lone surrogate went into the answer (and broke its
encoding).  `install_validation_errors(app)` answers instead with exactly what /openapi.json documents:

    {"detail": [{"loc": ["body", "email"], "msg": "String should have at least 3 characters",
                 "type": "string_too_short"}]}

`unprocessable(loc, msg)` builds the same answer for a refusal a route decides itself (an unknown queue,
an intent outside the taxonomy), so every 422 of the API has this one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from storage.text import storable_text

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {
            "title": "Location",
            "description": 'where the refused value is: ["body", "text"], ["path", "ticket_id"], ...',
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "msg": {"title": "Message", "description": "what is wrong, and so what to send", "type": "string"},
        "type": {"title": "Error Type", "description": "a machine-readable kind of error", "type": "string"},
    },
    "required": ["loc", "msg", "type"],
    "additionalProperties": False,
}
_MAX_LOC_PART = 64  # a loc names a field; a long one is a key the client made up, and is cut


def unprocessable(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 for a value a route refuses itself: raise it, it is answered like any validation error."""
    return RequestValidationError([{"loc": tuple(loc), "msg": msg, "type": type_}])


def validation_error_body(errors: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The documented body: `loc`, `msg` and `type` of each error, all of it encodable as UTF-8."""
    return {
        "detail": [
            {
                "loc": [_loc_part(part) for part in error.get("loc", ())],
                "msg": storable_text(str(error.get("msg", "")), max_chars=1000),
                "type": storable_text(str(error.get("type", "value_error")), max_chars=64),
            }
            for error in errors
        ]
    }


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(validation_error_body(exc.errors()), status_code=422)


def install_validation_errors(app: FastAPI) -> None:
    """Answer `app`'s validation errors without echoing input, and document exactly that answer."""

    async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error_response(exc)

    app.add_exception_handler(RequestValidationError, _validation_failed)
    document_validation_errors(app)


def document_validation_errors(app: FastAPI) -> None:
    """/openapi.json describes the 422 body `validation_error_body` builds, and nothing more."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.get("components", {}).get("schemas", {})
            if "ValidationError" in schemas:
                schemas["ValidationError"] = VALIDATION_ERROR_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _loc_part(part: object) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    # A loc can hold a key of the client's JSON (an unknown field, a lone surrogate in it): keep it short
    # and encodable, or the answer itself would fail.
    return storable_text(str(part), max_chars=_MAX_LOC_PART)
