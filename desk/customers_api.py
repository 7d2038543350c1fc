"""The JSON API for the customer panel: a person's history, and linking their contacts by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel

from desk.api import ApiAgent, CustomerOut
from desk.customers import CustomerProfile, customer_profile
from desk.inputs import RowId, refuse_unstorable_text
from desk.validation import unprocessable
from storage.customers import CannotLink, link_contacts, unlink_contact
from storage.db import Database

router = APIRouter(prefix="/api", tags=["customers"], dependencies=[Depends(refuse_unstorable_text)])


class ContactOut(CustomerOut):
    id: int


class CustomerTicketOut(BaseModel):
    id: int
    queue: str
    status: str
    category: str
    subject: str
    channel: str
    conversation_kind: str
    created_at: datetime
    resolved_at: datetime | None
    lead: dict[str, Any] | None


class RegistrationOut(BaseModel):
    event: str
    status: str
    since: datetime
    contact_id: int


class CustomerProfileOut(BaseModel):
    contact: ContactOut
    linked: list[ContactOut]
    tickets: list[CustomerTicketOut]
    registrations: list[RegistrationOut]
    conversations: int


class LinkBody(BaseModel):
    contact_id: RowId


def _db(request: Request) -> Database:
    return request.app.state.desk.db  # type: ignore[no-any-return]


def _out(profile: CustomerProfile) -> CustomerProfileOut:
    return CustomerProfileOut(
        contact=ContactOut(**vars(profile.contact)),
        linked=[ContactOut(**vars(c)) for c in profile.linked],
        tickets=[CustomerTicketOut(**vars(t)) for t in profile.tickets],
        registrations=[RegistrationOut(**r) for r in profile.registrations],
        conversations=profile.conversations,
    )


@router.get(
    "/customers/{contact_id}",
    response_model=CustomerProfileOut,
    summary="A customer: their contacts on every channel, tickets oldest first, registrations and leads",
)
async def get_customer(contact_id: RowId, request: Request, agent: ApiAgent) -> CustomerProfileOut:
    return _out(await customer_profile(_db(request), contact_id))


@router.post(
    "/customers/{contact_id}/links",
    response_model=CustomerProfileOut,
    summary="Link another contact as the same person (e.g. their Telegram and their X)",
)
async def link(contact_id: RowId, body: LinkBody, request: Request, agent: ApiAgent) -> CustomerProfileOut:
    await customer_profile(_db(request), body.contact_id)  # 404 names the unknown one
    try:
        await link_contacts(_db(request), contact_id, body.contact_id)
    except CannotLink as exc:
        raise unprocessable(("body", "contact_id"), str(exc)) from None
    return _out(await customer_profile(_db(request), contact_id))


@router.delete(
    "/customers/{contact_id}/links",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Take this contact out of the person it was linked to",
)
async def unlink(contact_id: RowId, request: Request, agent: ApiAgent) -> Response:
    await customer_profile(_db(request), contact_id)
    await unlink_contact(_db(request), contact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
