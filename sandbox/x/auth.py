"""Checking credentials the way X does: OAuth 1.0a HMAC-SHA1 signatures and app-only bearer tokens.

A request whose signature, key, token or bearer does not match the configured credentials gets X's 401,
so a client with a wrong secret fails here exactly as it would against api.twitter.com.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from oauthlib.oauth1.rfc5849 import signature, utils

from sandbox.x import errors
from sandbox.x.state import XConfig


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: the app (bearer token) or a user (OAuth 1.0a); ``key`` buckets rate limits."""

    kind: str  # "app" | "user"
    key: str


def authenticate(
    config: XConfig,
    *,
    method: str,
    origin: str,
    path_qs: str,
    headers: Mapping[str, str],
    form_body: str | None,
    now: float,
) -> AuthContext:
    """Return the caller's context or raise X's 401 (``origin`` is e.g. http://127.0.0.1:8081)."""
    header = headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        if credentials and hmac.compare_digest(credentials.strip(), config.bearer_token):
            return AuthContext("app", "app")
        raise errors.unauthorized()
    if scheme.lower() == "oauth":
        _verify_oauth1(config, method, origin, path_qs, header, form_body, now)
        return AuthContext("user", config.access_token)
    raise errors.unauthorized()


def _verify_oauth1(
    config: XConfig,
    method: str,
    origin: str,
    path_qs: str,
    header: str,
    form_body: str | None,
    now: float,
) -> None:
    try:
        oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
    except (ValueError, TypeError):
        raise errors.unauthorized() from None
    if oauth.get("oauth_signature_method") != "HMAC-SHA1":
        raise errors.unauthorized()
    if not (
        hmac.compare_digest(oauth.get("oauth_consumer_key", ""), config.consumer_key)
        and hmac.compare_digest(oauth.get("oauth_token", ""), config.access_token)
    ):
        raise errors.unauthorized()
    if config.timestamp_tolerance_s:
        try:
            skew = abs(now - int(oauth.get("oauth_timestamp", "")))
        except ValueError:
            raise errors.unauthorized() from None
        if skew > config.timestamp_tolerance_s:
            raise errors.unauthorized()
    given = oauth.get("oauth_signature", "")
    query = urlsplit(path_qs).query
    params = signature.collect_parameters(
        uri_query=query, body=form_body, headers={"Authorization": header}, exclude_oauth_signature=True
    )
    normalized = signature.normalize_parameters(params)
    path = urlsplit(path_qs).path
    for candidate_origin in (*config.signature_origins, origin):
        base_uri = signature.base_string_uri(candidate_origin.rstrip("/") + path)
        base = signature.signature_base_string(method.upper(), base_uri, normalized)
        expected = _hmac_sha1(base, config.consumer_secret, config.access_token_secret)
        if hmac.compare_digest(expected, given):
            return
    raise errors.unauthorized()


def _hmac_sha1(base_string: str, consumer_secret: str, token_secret: str) -> str:
    """RFC 5849 section 3.4.2: key = escaped secrets joined by '&'; signature = base64(HMAC-SHA1)."""
    key = f"{utils.escape(consumer_secret)}&{utils.escape(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
