"""The error bodies the X API v2 sends, as one exception type the handlers raise and the transport renders.

X answers failures with RFC 7807 ``application/problem+json``; request-validation failures add an
``errors`` list naming the parameters (the spec's InvalidRequestProblem).  Clients such as tweepy parse every non-2xx body as JSON, so an
error here is always a JSON body with the status X would use.
"""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"
_PROBLEMS = "https://api.twitter.com/2/problems/"


class XApiError(Exception):
    """An X API failure: HTTP status, JSON body and its content type."""

    def __init__(self, status: int, body: dict[str, Any], content_type: str = PROBLEM_JSON) -> None:
        super().__init__(f"{status}: {body.get('detail') or body}")
        self.status = status
        self.body = body
        self.content_type = content_type


def problem(status: int, title: str, detail: str, type_: str = "about:blank") -> XApiError:
    return XApiError(status, {"title": title, "detail": detail, "type": type_, "status": status})


def unauthorized() -> XApiError:
    # What X answers to a bad OAuth 1.0a signature, unknown key or unknown bearer token.
    return problem(401, "Unauthorized", "Unauthorized")


def unsupported_authentication() -> XApiError:
    return problem(
        403,
        "Unsupported Authentication",
        "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
        "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
        _PROBLEMS + "unsupported-authentication",
    )


def app_only_authentication() -> XApiError:
    """The reverse: an endpoint whose spec allows only the app's bearer token (e.g. GET /2/webhooks)."""
    return problem(
        403,
        "Unsupported Authentication",
        "Authenticating with OAuth 1.0a User Context is forbidden for this endpoint.  Supported "
        "authentication types are [OAuth 2.0 Application-Only].",
        _PROBLEMS + "unsupported-authentication",
    )


def oauth1_permissions() -> XApiError:
    # X's 403 when the app's permission (its access level) does not cover the endpoint, e.g. DMs with a
    # "Read and write" app: the token must be regenerated after the permission is changed.
    return problem(
        403,
        "Forbidden",
        "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.",
        _PROBLEMS + "oauth1-permissions",
    )


def forbidden(detail: str) -> XApiError:
    return problem(403, "Forbidden", detail)


def too_many_requests() -> XApiError:
    return problem(429, "Too Many Requests", "Too Many Requests")


def server_error(status: int) -> XApiError:
    titles = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    title = titles.get(status, "Service Unavailable")
    return problem(status, title, title)


def not_found_route() -> XApiError:
    return problem(
        404, "Not Found Error", "Sorry, that page does not exist.", _PROBLEMS + "resource-not-found"
    )


def invalid_request(message: str, parameters: dict[str, list[str]] | None = None) -> XApiError:
    """X's 400 for a bad parameter: an ``errors`` list naming the parameter, with problem fields."""
    error: dict[str, Any] = {"message": message}
    if parameters:
        error["parameters"] = parameters
    body = {
        "errors": [error],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": _PROBLEMS + "invalid-request",
        "status": 400,
    }
    return XApiError(400, body, PROBLEM_JSON)


def resource_not_found(parameter: str, value: str, resource_type: str, detail: str) -> dict[str, Any]:
    """A partial error X puts in a 200 response's ``errors`` list (e.g. an unknown user id)."""
    return {
        "value": value,
        "detail": detail,
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": _PROBLEMS + "resource-not-found",
    }
