"""Downloading an event's registrations as CSV: the JSON API's route and the desk page's (docs/outbound.md).

Registrations name people (docs/privacy.md), so only admins may download them; agents see the counts.
An event is known if the catalogue has it or registrations for it are stored (an event removed from
events.yml after people registered); anything else is 404.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import func, select

from desk.api import ApiAgent
from desk.auth import CurrentAgent
from storage.db import Database
from storage.models import EventRegistration
from storage.registrations_export import has_registrations, registrations_csv

router = APIRouter(prefix="/api", tags=["events"])
ADMINS_ONLY = "only an admin can download registrations: they are customers' personal data (docs/privacy.md)"


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


async def csv_response(request: Request, agent: CurrentAgent, event_key: str) -> Response:
    """The CSV download, after the checks every route makes: admin (403), known event (404)."""
    if not agent.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=ADMINS_ONLY)
    known = event_key in request.app.state.desk.events or await has_registrations(_db(request), event_key)
    if not known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no event {event_key!r} in the catalogue or the store")
    body = await registrations_csv(_db(request), event_key)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d")
    return Response(
        body, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="registrations-{event_key}-{stamp}.csv"',
                 "Cache-Control": "no-store"},
    )


async def registration_counts(db: Database) -> dict[str, dict[str, int]]:
    """Per event key: how many are registered and how many cancelled."""
    async with db.session() as session:
        rows = await session.execute(
            select(EventRegistration.event_key, EventRegistration.status, func.count())
            .group_by(EventRegistration.event_key, EventRegistration.status)
        )
        counts: dict[str, dict[str, int]] = {}
        for key, state, count in rows:
            counts.setdefault(key, {})[state] = count
        return counts


@router.get(
    "/events/{event_key}/registrations.csv",
    summary="An event's registrations as CSV (admins only)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "one row per registration, cancelled ones included"},
        403: {"description": "you are not an admin"},
        404: {"description": "no such event"},
    },
)
async def registrations_csv_api(event_key: str, request: Request, agent: ApiAgent) -> Response:
    return await csv_response(request, agent, event_key)


def events_overview(request: Request, counts: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """The catalogue's events with their counts, then keys only the store knows."""
    events = request.app.state.desk.events
    rows = [{"key": e.key, "name": e.name, "starts_at": e.starts_at, "cancelled": e.cancelled,
             "registered": counts.get(e.key, {}).get("registered", 0),
             "cancelled_count": counts.get(e.key, {}).get("cancelled", 0)}
            for e in sorted(events.values(), key=lambda e: e.starts_at)]
    rows += [{"key": k, "name": k, "starts_at": None, "cancelled": False, "registered": c.get("registered", 0),
              "cancelled_count": c.get("cancelled", 0)} for k, c in sorted(counts.items()) if k not in events]
    return rows
