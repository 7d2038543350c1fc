"""Incidents in the desk: the JSON API (every refusal), the pages and the spike banner (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from storage import actions
from storage.actions import incidents as incident_actions
from storage.models import Alert, Incident, OutboxItem, utcnow
from tests.fixtures.desk import mint_api_token
from tests.store_helpers import mention
from tests.test_desk_pages import _sign_in


async def _raise_alert(db, key: str = "intent:payment_failed") -> Alert:  # type: ignore[no-untyped-def]
    alert = await incident_actions.raise_alert(
        db, key=key, window_start=utcnow().replace(second=0, microsecond=0), count=14, baseline=1.5,
        parent_key="category:support", quiet_s=7200,
    )
    assert alert is not None
    return alert


async def _public_ticket(db, make_ticket):  # type: ignore[no-untyped-def]
    recorded = await actions.record_inbound(db, dataclasses.replace(
        mention("@brand checkout is broken", sender="777", handle="pat", msg_id="5550001"), summons_brand=True))
    await actions.record_nlu_result(db, recorded.message_id, intent="payment_failed", confidence=0.9, category="support")
    return await actions.escalate(db, recorded.conversation_id, queue="support", subject="checkout is broken")


async def test_the_incident_api_opens_links_updates_and_resolves(desk_client, db, make_agent, make_ticket) -> None:  # type: ignore[no-untyped-def]
    ann = await make_agent()
    headers = await mint_api_token(db, ann.id)
    alert = await _raise_alert(db)
    assert [a["id"] for a in (await desk_client.get("/api/alerts", headers=headers)).json()] == [alert.id]

    dm_ticket = await make_ticket("payment failed at checkout", intent="payment_failed")
    public = await _public_ticket(db, make_ticket)
    other = await make_ticket("where is my parcel", intent="order_problem")

    opened = await desk_client.post("/api/incidents", headers=headers, json={
        "title": "Checkout fails", "intent": "payment_failed", "keywords": ["checkout"], "alert_id": alert.id})
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    assert incident["alerts"][0]["id"] == alert.id and incident["status"] == "open"
    assert (await desk_client.get("/api/alerts", headers=headers)).json() == []  # taken up: no banner

    suggested = (await desk_client.get(f"/api/incidents/{incident['id']}/suggestions", headers=headers)).json()
    assert [t["ticket_id"] for t in suggested] == [dm_ticket.id, public.id]
    linked = await desk_client.post(f"/api/incidents/{incident['id']}/links", headers=headers,
                                    json={"ticket_ids": [dm_ticket.id, public.id, other.id]})
    assert linked.json() == {"linked": [dm_ticket.id, public.id, other.id]}
    assert (await desk_client.delete(f"/api/incidents/{incident['id']}/links/{other.id}", headers=headers)).status_code == 204

    sent = await desk_client.post(f"/api/incidents/{incident['id']}/updates", headers=headers,
                                  json={"text": "We know checkout fails and are fixing it."})
    assert sent.status_code == 201 and sent.json()["sent_to"] == 2

    resolved = await desk_client.post(f"/api/incidents/{incident['id']}/resolve", headers=headers,
                                      json={"text": "Checkout works again.", "resolve_tickets": True})
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved" and [u["final"] for u in body["updates"]] == [False, True]
    assert {t["status"] for t in body["links"]} == {"resolved"}
    listed = (await desk_client.get("/api/incidents", headers=headers, params={"status": "resolved"})).json()
    assert [(i["id"], i["linked"]) for i in listed] == [(incident["id"], 2)]


async def test_every_refusal_of_the_incident_api(desk_client, db, make_agent, make_ticket) -> None:  # type: ignore[no-untyped-def]
    ann, bob = await make_agent(), await make_agent()
    headers, bobs = await mint_api_token(db, ann.id), await mint_api_token(db, bob.id)
    ticket = await _public_ticket(db, make_ticket)
    incident = (await desk_client.post("/api/incidents", headers=headers, json={"title": "Checkout"})).json()
    base = f"/api/incidents/{incident['id']}"

    # 401: no token, on every route.
    for method, path in [("GET", "/api/incidents"), ("POST", "/api/incidents"), ("GET", base), ("GET", "/api/alerts"),
                         ("POST", f"{base}/links"), ("DELETE", f"{base}/links/1"), ("POST", f"{base}/updates"),
                         ("POST", f"{base}/resolve"), ("GET", f"{base}/suggestions")]:
        assert (await desk_client.request(method, path, json={})).status_code == 401, path
    # 404: no such incident, ticket, alert, or a ticket that is not linked.
    assert (await desk_client.get("/api/incidents/999999", headers=headers)).status_code == 404
    assert (await desk_client.get("/api/incidents/999999/suggestions", headers=headers)).status_code == 404
    assert (await desk_client.post("/api/incidents/999999/updates", headers=headers, json={"text": "x"})).status_code == 404
    assert (await desk_client.post(f"{base}/links", headers=headers, json={"ticket_ids": [999999]})).status_code == 404
    assert (await desk_client.delete(f"{base}/links/{ticket.id}", headers=headers)).status_code == 404
    assert (await desk_client.post("/api/incidents", headers=headers, json={"title": "t", "alert_id": 999999})).status_code == 404
    # 422: bounded, typed bodies.
    for body in [{"title": ""}, {"title": "x" * 201}, {"title": "t", "keywords": [f"k{i}" for i in range(11)]},
                 {"title": "t", "keywords": ["k" * 65]}, {"title": "t", "alert_id": 0}, {"title": "   "}]:
        assert (await desk_client.post("/api/incidents", headers=headers, json=body)).status_code == 422, body
    assert (await desk_client.post(f"{base}/links", headers=headers, json={"ticket_ids": []})).status_code == 422
    assert (await desk_client.post(f"{base}/links", headers=headers,
                                   json={"ticket_ids": list(range(1, 202))})).status_code == 422
    assert (await desk_client.post(f"{base}/updates", headers=headers, json={"text": ""})).status_code == 422
    assert (await desk_client.get("/api/incidents", headers=headers, params={"status": "nope"})).status_code == 422
    assert (await desk_client.get("/api/incidents/0", headers=headers)).status_code == 422
    await desk_client.post(f"{base}/links", headers=headers, json={"ticket_ids": [ticket.id]})
    too_long = await desk_client.post(f"{base}/updates", headers=headers, json={"text": "x" * 281})
    assert too_long.status_code == 422 and "at most 280" in too_long.text  # the public thread's limit
    # 403: only the opener or an admin resolves.
    refused = await desk_client.post(f"{base}/resolve", headers=bobs, json={})
    assert refused.status_code == 403 and "only the agent who opened" in refused.json()["detail"]
    # 409: a resolved incident takes nothing more.
    assert (await desk_client.post(f"{base}/resolve", headers=headers, json={})).status_code == 200
    for path, body in [(f"{base}/resolve", {}), (f"{base}/updates", {"text": "again"}), (f"{base}/links", {"ticket_ids": [ticket.id]})]:
        again = await desk_client.post(path, headers=headers, json=body)
        assert again.status_code == 409 and "already resolved" in again.json()["detail"], path
    assert (await desk_client.delete(f"{base}/links/{ticket.id}", headers=headers)).status_code == 409


async def test_the_routes_are_documented(desk_client) -> None:  # type: ignore[no-untyped-def]
    paths = (await desk_client.get("/openapi.json")).json()["paths"]
    for path in ("/api/incidents", "/api/incidents/{incident_id}", "/api/incidents/{incident_id}/links",
                 "/api/incidents/{incident_id}/updates", "/api/incidents/{incident_id}/resolve", "/api/alerts"):
        assert path in paths
        assert all(op.get("summary") for op in paths[path].values())


async def test_the_banner_opens_an_incident_and_the_page_runs_it(desk_client, db, make_agent, make_ticket) -> None:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    alert = await _raise_alert(db)
    ticket = await make_ticket("payment failed at checkout", intent="payment_failed", channel="telegram")
    csrf = await _sign_in(desk_client, "ann@example.com")

    queue = await desk_client.get("/queues/all")
    assert "Spike: <strong>intent payment_failed</strong> has\n      14 messages" in queue.text
    assert f'href="/incidents/new?alert={alert.id}"' in queue.text
    form = await desk_client.get(f"/incidents/new?alert={alert.id}")
    assert 'value="Spike: intent payment_failed"' in form.text and 'value="payment_failed"' in form.text

    assert (await desk_client.post("/incidents", data={"title": "Checkout"})).status_code == 403  # no CSRF token
    created = await desk_client.post("/incidents", data={
        "title": "Checkout fails", "intent": "payment_failed", "keywords": "", "alert_id": str(alert.id), "csrf_token": csrf})
    assert created.status_code == 303
    page = await desk_client.get(created.headers["location"])
    async with db.session() as session:
        incident = (await session.execute(select(Incident))).scalar_one()
    assert f'data-suggested="{ticket.id}"' in page.text
    assert "Spike:" not in page.text  # the banner is gone once an incident took the alert up
    # The same alert's link now leads to its incident.
    assert (await desk_client.get(f"/incidents/new?alert={alert.id}")).headers["location"] == f"/incidents/{incident.id}"

    await desk_client.post(f"/incidents/{incident.id}/links", data={"ticket_id": str(ticket.id), "csrf_token": csrf})
    await desk_client.post(f"/incidents/{incident.id}/updates", data={"text": "Looking into it.", "csrf_token": csrf})
    page = await desk_client.get(f"/incidents/{incident.id}")
    assert f'data-linked="{ticket.id}"' in page.text and "Update sent to 1 customer(s)." in page.text
    await desk_client.post(f"/incidents/{incident.id}/resolve",
                           data={"text": "Fixed.", "resolve_tickets": "1", "csrf_token": csrf})
    page = await desk_client.get(f"/incidents/{incident.id}")
    assert "Incident resolved. Its open tickets are resolved too." in page.text
    async with db.session() as session:
        texts = [r.text for r in (await session.execute(select(OutboxItem).order_by(OutboxItem.id))).scalars()]
    assert texts[-2:] == ["Looking into it.", "Fixed."]
    refused = await desk_client.post(f"/incidents/{incident.id}/updates", data={"text": "late", "csrf_token": csrf})
    assert "already resolved" in (await desk_client.get(refused.headers["location"])).text
    assert (await desk_client.get("/incidents/999999")).status_code == 404
    listing = await desk_client.get("/incidents")
    assert f'data-incident="{incident.id}"' in listing.text
