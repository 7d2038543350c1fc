"""Who is asking: signed bearer tokens for the API, a signed session cookie and CSRF tokens for the pages.

Both credentials carry only an agent id; every request loads the agent again, so disabling an agent
(`frontdesk agents disable`) locks them out at once, whatever they still hold.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from storage.db import Database
from storage.models import Agent, AgentRole

TOKEN_SALT = "frontdesk.desk.api-token"
SESSION_AGENT_KEY = "agent_id"
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
    """Issues and checks API bearer tokens: the agent id, signed with the secret key, with an expiry."""

    def __init__(self, secret_key: str, ttl_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)
        self.ttl_s = ttl_s

    def issue(self, agent_id: int) -> str:
        return self._serializer.dumps({"agent": agent_id})

    def agent_id(self, token: str) -> int | None:
        """The agent id in a valid, unexpired token; None for anything else."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_s)
        except (SignatureExpired, BadSignature):
            return None
        agent_id = payload.get("agent") if isinstance(payload, dict) else None
        return agent_id if isinstance(agent_id, int) else None


async def load_active_agent(db: Database, agent_id: int | None) -> CurrentAgent | None:
    if agent_id is None:
        return None
    async with db.session() as session:
        agent = await session.get(Agent, agent_id)
    if agent is None or not agent.active:
        return None
    return CurrentAgent.from_row(agent)


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
    """FastAPI dependency for /api/ routes: the agent named by a valid bearer token, else 401.

    (The HTTPBearer scheme is declared so that /docs offers an "Authorize" button.)
    """
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("missing bearer token: POST /api/token with your e-mail and password to get one")
    state = request.app.state.desk
    agent = await load_active_agent(state.db, state.tokens.agent_id(token))
    if agent is None:
        raise _unauthorized("invalid or expired token, or the agent is disabled: get a new one from POST /api/token")
    return agent


async def session_agent(request: Request) -> CurrentAgent | None:
    """The agent signed in through the session cookie, or None."""
    agent_id = request.session.get(SESSION_AGENT_KEY)
    agent = await load_active_agent(request.app.state.desk.db, agent_id if isinstance(agent_id, int) else None)
    if agent is None and agent_id is not None:
        request.session.pop(SESSION_AGENT_KEY, None)  # disabled or deleted: forget the stale sign-in
    return agent


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
    if not isinstance(expected, str) or not submitted or not hmac.compare_digest(expected, submitted):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="the form's security token is missing or stale: reload the page and try again",
        )


def start_session(request: Request, agent: Agent) -> None:
    """Sign in: a fresh session (no fixation), with a fresh CSRF token."""
    request.session.clear()
    request.session[SESSION_AGENT_KEY] = agent.id
    request.session[SESSION_CSRF_KEY] = secrets.token_urlsafe(32)


def end_session(request: Request) -> None:
    request.session.clear()
