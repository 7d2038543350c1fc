"""Public posts (breaking news): drafted by one agent, approved by a second, posted once through the outbox.

The API on SQLite and PostgreSQL with every refusal an agent can meet; the post itself through the real
tweepy client against the X emulator: a scheduled post waits for its time, goes out once although two
workers lease, and a worker that died after posting does not post it again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.channels.x import XSender
from bot.outbox import OutboxLoop
from sandbox.server import RunningSandbox
from storage.actions import public_posts
from storage.db import Database
from storage.models import Channel, OutboxStatus
from storage.outbox import lease_due
from storage.public_posts import post_view
from tests.fixtures.desk import api_login
from tests.fixtures.x_channel import outbox_rows

NEWS = "Checkout is back: payments work again. Thanks for your patience!"


@pytest.fixture
async def ann(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("ann@example.com", "Ann")
    return await api_login(desk_client, "ann@example.com")


@pytest.fixture
async def bo(desk_client, make_agent) -> dict[str, str]:  # type: ignore[no-untyped-def]
    await make_agent("bo@example.com", "Bo")
    return await api_login(desk_client, "bo@example.com")


async def _draft(client, headers, text: str = NEWS, **extra: Any) -> Any:  # type: ignore[no-untyped-def]
    return await client.post("/api/public-posts", headers=headers, json={"text": text, **extra})


async def test_a_second_agent_approves_and_the_author_cannot(desk_client, ann, bo) -> None:
    drafted = await _draft(desk_client, ann)
    assert drafted.status_code == 201
    post = drafted.json()
    assert post["status"] == "draft" and post["author_name"] == "Ann" and post["approver_id"] is None

    own = await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=ann, json={})
    assert own.status_code == 403 and "a second agent must approve it" in own.json()["detail"]

    approved = await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=bo, json={})
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved" and approved.json()["approver_name"] == "Bo"

    again = await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=bo, json={})
    assert again.status_code == 409 and "only a draft" in again.json()["detail"]
    discard = await desk_client.delete(f"/api/public-posts/{post['id']}", headers=ann)
    assert discard.status_code == 409

    listed = (await desk_client.get("/api/public-posts", headers=ann)).json()
    assert [(p["id"], p["status"]) for p in listed] == [(post["id"], "approved")]


@pytest.mark.parametrize(("text", "why"), [
    ("x" * 281, "281 characters as X counts them"),
    ("新" * 141, "282 characters as X counts them"),  # CJK counts 2
    ("   ", "a post needs text"),
])
async def test_a_post_x_would_refuse_is_422_with_the_reason(desk_client, ann, text: str, why: str) -> None:
    refused = await _draft(desk_client, ann, text)
    assert refused.status_code == 422 and why in refused.text


async def test_a_long_link_counts_23_and_fits(desk_client, ann) -> None:
    text = "y" * 250 + " https://status.example.com/" + "z" * 200
    assert (await _draft(desk_client, ann, text)).status_code == 201


async def test_personal_data_is_held_until_confirmed(desk_client, ann) -> None:
    text = "Winner of the raffle: call Anna at +49 170 1234567 or anna@example.com"
    held = await _draft(desk_client, ann, text)
    assert held.status_code == 422 and "public on X and seems to contain" in held.text
    assert (await _draft(desk_client, ann, text, confirm_public=True)).status_code == 201


async def test_bodies_ids_and_times_out_of_bounds(desk_client, ann, bo) -> None:
    assert (await _draft(desk_client, ann, "x" * 1001)).status_code == 422
    assert (await desk_client.post("/api/public-posts", headers=ann, json={})).status_code == 422
    assert (await desk_client.get("/api/public-posts/999999", headers=ann)).status_code == 404
    assert (await desk_client.get("/api/public-posts/0", headers=ann)).status_code == 422
    assert (await desk_client.post("/api/public-posts/999999/approve", headers=bo, json={})).status_code == 404
    assert (await desk_client.delete("/api/public-posts/999999", headers=bo)).status_code == 404
    assert (await desk_client.get("/api/public-posts")).status_code == 401
    post = (await _draft(desk_client, ann)).json()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    late = await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=bo, json={"scheduled_at": past})
    assert late.status_code == 422 and "has passed" in late.text
    far = (datetime.now(UTC) + timedelta(days=61)).isoformat()
    assert (await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=bo,
                                   json={"scheduled_at": far})).status_code == 422
    assert (await desk_client.post(f"/api/public-posts/{post['id']}/approve", headers=bo,
                                   json={"scheduled_at": "tomorrow"})).status_code == 422
    assert (await desk_client.delete(f"/api/public-posts/{post['id']}", headers=bo)).status_code == 204
    assert (await desk_client.get(f"/api/public-posts/{post['id']}", headers=ann)).status_code == 404


async def test_the_pages_draft_refuse_self_approval_and_approve(desk_client, make_agent) -> None:
    from tests.test_desk_pages import _sign_in

    await make_agent("ann@example.com", "Ann")
    await make_agent("bo@example.com", "Bo")
    csrf = await _sign_in(desk_client, "ann@example.com")
    saved = await desk_client.post("/public-posts", data={"text": NEWS, "csrf_token": csrf}, follow_redirects=True)
    assert "another agent must approve it" in saved.text and 'data-status="draft"' in saved.text
    post_id = saved.text.split('data-post="')[1].split('"')[0]
    assert "waiting for another agent" in saved.text
    own = await desk_client.post(f"/public-posts/{post_id}/approve", data={"csrf_token": csrf}, follow_redirects=True)
    assert "a second agent must approve it" in own.text
    forged = await desk_client.post(f"/public-posts/{post_id}/approve", data={"csrf_token": "nope"})
    assert forged.status_code == 403

    assert (await desk_client.post("/public-posts", data={"text": NEWS, "csrf_token": "nope"})).status_code == 403
    assert (await desk_client.post(f"/public-posts/{post_id}/discard", data={"csrf_token": "nope"})).status_code == 403
    long = await desk_client.post("/public-posts", data={"text": "x" * 300, "csrf_token": csrf}, follow_redirects=True)
    assert "300 characters as X counts them" in long.text
    gone = await desk_client.post("/public-posts/999999/approve", data={"csrf_token": csrf}, follow_redirects=True)
    assert "does not exist" in gone.text

    desk_client.cookies.clear()
    csrf = await _sign_in(desk_client, "bo@example.com")
    bad_time = await desk_client.post(f"/public-posts/{post_id}/approve", data={"csrf_token": csrf,
                                      "scheduled_at": "soon"}, follow_redirects=True)
    assert "is not a date and time" in bad_time.text
    done = await desk_client.post(f"/public-posts/{post_id}/approve", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Approved: it is being posted now." in done.text and 'data-status="approved"' in done.text
    late = await desk_client.post(f"/public-posts/{post_id}/discard", data={"csrf_token": csrf}, follow_redirects=True)
    assert "only a draft can be" in late.text


# --- through the outbox and the X emulator ------------------------------------------------------------------


async def _approved(db: Database, *, in_s: float | None = None) -> int:
    from storage.agents import create_agent

    ann = await create_agent(db, email="ann@example.com", name="Ann", password="correct horse")
    bo = await create_agent(db, email="bo@example.com", name="Bo", password="correct horse")
    post = await public_posts.draft_post(db, ann.id, NEWS)  # type: ignore[arg-type]
    when = datetime.now(UTC) + timedelta(seconds=in_s) if in_s else None
    await public_posts.approve_post(db, post.id, bo.id, scheduled_at=when)  # type: ignore[arg-type]
    return post.id  # type: ignore[return-value]


def _worker(db: Database, client: Any, brand: str, name: str) -> OutboxLoop:
    return OutboxLoop(db, {Channel.x: XSender(client, brand, db=db)}, owner=name, idle_s=0.05)


async def test_a_scheduled_post_goes_out_once_at_its_time(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    post_id = await _approved(db, in_s=2.0)
    assert (await post_view(db, post_id)).status == "scheduled"
    one, two = _worker(db, x_client, brand, "w1"), _worker(db, x_client, brand, "w2")
    assert await one.run_once() == 0 and await two.run_once() == 0  # not before its time
    assert (await x_control.sent())["tweets"] == []

    await asyncio.sleep(2.2)
    sent = sum(await asyncio.gather(one.run_once(), two.run_once()))
    assert sent == 1
    assert await one.run_once() == 0 and await two.run_once() == 0
    [tweet] = (await x_control.sent())["tweets"]
    assert tweet["text"] == NEWS and tweet["in_reply_to_tweet_id"] is None  # standalone, not a reply
    view = await post_view(db, post_id)
    assert view.status == "sent" and view.x_post_id == tweet["id"]


async def test_a_post_whose_worker_died_after_posting_is_not_posted_again(
    db: Database, x_sandbox: RunningSandbox, x_client: Any, x_control: Any
) -> None:
    brand = x_sandbox.x.brand.id
    post_id = await _approved(db)
    [delivery] = await lease_due(db, "dying-worker", lease_s=0.2)
    await XSender(x_client, brand).deliver(delivery)  # posted; the worker dies before marking it sent
    await asyncio.sleep(0.3)

    assert await _worker(db, x_client, brand, "next").run_once() == 1  # reconciled, not re-posted
    assert len((await x_control.sent())["tweets"]) == 1
    [row] = await outbox_rows(db)
    assert row.status == OutboxStatus.sent
    assert (await post_view(db, post_id)).status == "sent"
