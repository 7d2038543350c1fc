"""The Announcements pages: write → preview → send for admins; the list, progress and report for everyone.

Writing saves a draft and opens its page, which previews it (recipients, X cost, how long the pace takes);
sending is a second, deliberate click there.  Plain form posts with the session's CSRF token, answered
with a redirect, like the rest of the desk.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from desk.announcements import describe_duration, setup_of
from desk.auth import check_csrf
from desk.inputs import RowId, refuse_unstorable_text
from desk.pages import Csrf, PageAgent, _flash, _render, path_for
from storage import announcements as store
from storage.actions.announcements import AlreadySent, BadAudience, create_announcement, start_sending
from storage.errors import InvalidText
from storage.models import AnnouncementStatus

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_unstorable_text)])


@router.get("/announcements", name="announcements_page")
async def announcements_page(request: Request, agent: PageAgent) -> Response:
    state = request.app.state.desk
    setup = setup_of(state.settings)
    return await _render(request, "announcements.html", {
        "announcements": await store.list_announcements(state.db), "events": setup.events, "footer": setup.footer,
        "tags": await store.known_tags(state.db),
    }, agent=agent)


@router.post("/announcements", name="announcement_create")
async def announcement_create(
    request: Request, agent: PageAgent, csrf: Csrf = "",
    text: Annotated[str, Form(max_length=4_096)] = "", audience: Annotated[str, Form(max_length=160)] = "",
) -> Response:
    """`audience` is "opted_in", "event:<key>" or "tag:<tag>" (one select on the page)."""
    check_csrf(request, csrf)
    state = request.app.state.desk
    if not agent.is_admin:
        _flash(request, "Only an admin can write announcements.")
        return RedirectResponse(path_for(request, "announcements_page"), status_code=303)
    kind, _, key = audience.partition(":")
    setup = setup_of(state.settings)
    try:
        row = await create_announcement(state.db, text=text, audience=kind, audience_key=key, footer=setup.footer,
                                        agent_id=agent.id, event_keys=frozenset(setup.events))
    except (InvalidText, BadAudience) as exc:
        message = str(exc)
        _flash(request, message[:1].upper() + message[1:] + ".")
        return RedirectResponse(path_for(request, "announcements_page"), status_code=303)
    assert row.id is not None
    return RedirectResponse(path_for(request, "announcement_page", announcement_id=row.id), status_code=303)


@router.get("/announcements/{announcement_id}", name="announcement_page")
async def announcement_page(announcement_id: RowId, request: Request, agent: PageAgent) -> Response:
    state = request.app.state.desk
    row = await store.get_announcement(state.db, announcement_id)
    if row is None:
        return await _render(request, "not_found.html", {"what": f"Announcement #{announcement_id}"}, agent=agent,
                             status_code=404)
    setup = setup_of(state.settings)
    preview = None
    if row.status == AnnouncementStatus.draft:
        preview = await store.preview(state.db, audience=row.audience, key=row.audience_key, text=row.text,
                                      footer=setup.footer, pace=setup.pace, prices=setup.prices)
    return await _render(request, "announcement.html", {
        "a": row, "preview": preview, "duration": describe_duration(preview.duration_s) if preview else "",
        "progress": await store.progress(state.db, announcement_id),
        "failures": await store.failures(state.db, announcement_id) if row.status != AnnouncementStatus.draft else [],
        "event_name": setup.events.get(row.audience_key, row.audience_key),
    }, agent=agent)


@router.post("/announcements/{announcement_id}/send", name="announcement_send")
async def announcement_send(announcement_id: RowId, request: Request, agent: PageAgent, csrf: Csrf = "") -> Response:
    check_csrf(request, csrf)
    state = request.app.state.desk
    if not agent.is_admin:
        _flash(request, "Only an admin can send announcements.")
    elif await store.get_announcement(state.db, announcement_id) is None:
        _flash(request, f"There is no announcement #{announcement_id}.")
        return RedirectResponse(path_for(request, "announcements_page"), status_code=303)
    else:
        try:
            count = await start_sending(state.db, announcement_id, agent.id)
            _flash(request, f"Sending to {count} recipient{'s' if count != 1 else ''}, at the pace the platforms "
                   "allow.", "ok")
        except AlreadySent:
            _flash(request, "This announcement was sent already; it goes out once.")
    return RedirectResponse(path_for(request, "announcement_page", announcement_id=announcement_id), status_code=303)
