"""Who is asking: bearer tokens for the API, a session cookie and CSRF tokens for the pages.

Both credentials name a sign-in kept in the store (storage/agent_sessions.py) by a random secret, never
an agent id: logging out, `DELETE /api/token`, `POST /api/tokens/revoke-all`, disabling an agent or
changing their password ends it server-side, and a saved copy of the cookie or token opens nothing.
Every request looks the sign-in (and its agent) up again.

Signing in is throttled per account and per client address (storage/login_throttle.py), and the
password check runs off the event loop (storage/agents.py).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from frontdesk.core.settings import Settings
from storage import agent_sessions, login_throttle
from storage.agents import authenticate
from storage.login_throttle import LoginThrottled, ThrottlePolicy
from storage.models import Agent, AgentRole, SessionKind, utcnow

log = logging.getLogger(__name__)

TOKEN_SALT = "frontdesk.desk.api-token"
SESSION_ID_KEY = "sid"
SESSION_CSRF_KEY = "csrf"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class CurrentAgent:
    """The signed-in agent, as the routes need it (no password hash in sight)."""

    id: int
    name: str
    email: str
    is_admin: bool

    @classmethod
    def from_row(cls, agent: Agent) -> CurrentAgent:
        assert agent.id is not None
        return cls(id=agent.id, name=agent.name, email=agent.email, is_admin=agent.role == AgentRole.admin)


class TokenSigner:
    """Wraps a sign-in's secret into a bearer token, signed with the secret key and dated.

    Forged and stale tokens are refused without asking the store; whether a well-signed token's
    sign-in is still live (not revoked, its agent active) only the store can say.
    """

    def __init__(self, secret_key: str, ttl_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)
        self.ttl_s = ttl_s

    def issue(self, secret: str) -> str:
        return self._serializer.dumps(secret)

    def secret(self, token: str) -> str | None:
        """The sign-in secret in a well-signed, unexpired token; None for anything else."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_s)
        except (SignatureExpired, BadSignature):
            return None
        return payload if isinstance(payload, str) and payload else None


# --- signing in --------------------------------------------------------------------------------------


def throttle_policy(settings: Settings) -> ThrottlePolicy:
    return ThrottlePolicy(
        per_account=settings.desk_login_max_failures_per_account,
        per_address=settings.desk_login_max_failures_per_address,
        window_s=settings.desk_login_window_s,
    )


def client_address(request: Request) -> str | None:
    """The peer's address as the server sees it (behind a proxy, uvicorn's --forwarded-allow-ips decides)."""
    return request.client.host if request.client else None


async def sign_in(request: Request, email: str, password: str, kind: SessionKind) -> tuple[Agent, str] | None:
    """Check the credentials and start a sign-in of `kind`: the agent and the sign-in's secret, or None.

    Raises LoginThrottled (answer 429) while the account or the client address is locked, whatever
    the password.
    """
    state = request.app.state.desk
    address = client_address(request)
    try:
        await login_throttle.begin_attempt(state.db, email, address, throttle_policy(state.settings))
    except LoginThrottled as exc:
        log.warning("desk: sign-in refused, too many failures (client %s, %d s left)", address,
                    exc.retry_after_s)
        raise
    agent = await authenticate(state.db, email, password)
    if agent is None or agent.id is None:
        return None
    await login_throttle.succeeded(state.db, email)
    ttl_s = state.settings.desk_session_max_age_s if kind == SessionKind.cookie else state.tokens.ttl_s
    secret = await agent_sessions.create(state.db, agent.id, kind, ttl_s=ttl_s, address=address)
    return agent, secret


# --- bearer tokens -----------------------------------------------------------------------------------


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from POST /api/token, sent as `Authorization: Bearer <token>`.",
)


async def api_agent(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)] = None
) -> CurrentAgent:
    """FastAPI dependency for /api/ routes: the agent whose live sign-in the bearer token names, else 401.

    (The HTTPBearer scheme is declared so that /docs offers an "Authorize" button.)
    """
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing bearer token: POST /api/token with your e-mail and password to get one")
    state = request.app.state.desk
    secret = state.tokens.secret(token)
    found = await agent_sessions.find(state.db, secret, SessionKind.token) if secret else None
    if found is None:
        raise _unauthorized(
            "invalid, expired or revoked token, or the agent is disabled: get a new one from POST /api/token"
        )
    return CurrentAgent.from_row(found.agent)


def presented_token_secret(request: Request) -> str | None:
    """The sign-in secret inside this request's bearer token (to revoke exactly that token)."""
    token = bearer_token(request)
    return request.app.state.desk.tokens.secret(token) if token else None


# --- the session cookie ------------------------------------------------------------------------------


async def session_agent(request: Request) -> CurrentAgent | None:
    """The agent whose live sign-in the session cookie names, or None.

    A sign-in in use is renewed once half its lifetime has passed (one write then, not one per request).
    """
    secret = request.session.get(SESSION_ID_KEY)
    if not isinstance(secret, str) or not secret:
        return None
    state = request.app.state.desk
    found = await agent_sessions.find(state.db, secret, SessionKind.cookie)
    if found is None:
        request.session.pop(SESSION_ID_KEY, None)  # ended, expired or disabled: forget the stale sign-in
        return None
    max_age_s = state.settings.desk_session_max_age_s
    if (found.expires_at - utcnow()).total_seconds() < max_age_s / 2:
        await agent_sessions.extend(state.db, found.session_id, ttl_s=max_age_s)
        request.session[SESSION_ID_KEY] = secret  # marks the session changed, so the cookie is renewed too
    return CurrentAgent.from_row(found.agent)


async def any_agent(request: Request) -> CurrentAgent:
    """A bearer token or the session cookie (the live feed serves both the pages and API clients)."""
    if bearer_token(request) is not None:
        return await api_agent(request)
    agent = await session_agent(request)
    if agent is None:
        raise _unauthorized("sign in first (session cookie) or send a bearer token")
    return agent


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use; every form carries it back."""
    token = request.session.get(SESSION_CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF_KEY] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a POST whose token (form field or X-CSRF-Token header) is not this session's."""
    expected = request.session.get(SESSION_CSRF_KEY)
    submitted = submitted or request.headers.get(CSRF_HEADER)
    if not isinstance(expected, str) or not submitted or not _same(expected, submitted):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="the form's security token is missing or stale: reload the page and try again",
        )


def _same(expected: str, submitted: str) -> bool:
    # As bytes: compare_digest refuses non-ASCII str (a 500 for whatever a client types).
    return hmac.compare_digest(expected.encode(), submitted.encode("utf-8", "surrogatepass"))


def start_session(request: Request, secret: str) -> None:
    """Sign in: a fresh session (no fixation) naming the stored sign-in, with a fresh CSRF token."""
    request.session.clear()
    request.session[SESSION_ID_KEY] = secret
    request.session[SESSION_CSRF_KEY] = secrets.token_urlsafe(32)


async def end_session(request: Request) -> None:
    """Sign out: the stored sign-in ends, so a saved copy of the cookie opens nothing afterwards."""
    secret = request.session.get(SESSION_ID_KEY)
    if isinstance(secret, str) and secret:
        await agent_sessions.revoke(request.app.state.desk.db, secret)
    request.session.clear()
