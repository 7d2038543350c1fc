"""Personal data: `frontdesk customers export | erase | purge-expired`, the workers' retention, and the
anonymised training export of agents' corrections.  Run as the real CLI against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import stat
from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select, text, update
from sqlmodel import col

from frontdesk.core.settings import PROJECT_ROOT, Settings
from storage import actions
from storage.actions.privacy import CANCELLED_DELIVERY, ERASED_TEXT, erase_expired
from storage.actions.registrations import register
from storage.db import Database
from storage.models import (
    Contact,
    Conversation,
    EventRegistration,
    Message,
    OutboxItem,
    OutboxStatus,
    Ticket,
    TicketEvent,
    TicketStatus,
    utcnow,
)
from tests.fixtures.desk import inbound
from tests.store_helpers import mention

ANNA_HANDLE, ANNA_NAME, ANNA_X_ID, ANNA_TG_ID = "annazq7", "Annabel Zquirrel", "777000111", "777000222"
ANNA_EMAIL = "annabel.zq7@example.com"
ANNA_TEXTS = {
    "dm": f"my parcel never came, mail me at {ANNA_EMAIL} about order QX-88231",
    "dm_later": "still nothing at 9 Quillfeather Row, please hurry",
    "public": "@brand third week waiting for my Quillfeather kettle",
    "in_bobs_thread": "@bobbyzq same here, I live at 4 Xylophone Mews and mine never came",
    "telegram": "hello from Telegram, any news on the Zanzibar voucher",
}
BOB_TEXT = "@brand my Vortexmatic blender is broken"


@dataclass
class Story:
    anna_x: int
    anna_tg: int
    bob: int
    dm_ticket: int
    bobs_ticket: int
    pending_reply: int
    bob_dm_text: str


async def _story(db: Database, make_agent) -> Story:  # type: ignore[no-untyped-def]
    """Anna on X (DM, her own public thread, a reply in Bob's thread) and on Telegram; Bob alone in a DM."""
    agent = await make_agent()
    dm = await actions.record_inbound(db, inbound(ANNA_TEXTS["dm"], sender=ANNA_X_ID, handle=ANNA_HANDLE))
    await actions.record_nlu_result(
        db, dm.message_id, intent="order_problem", confidence=0.9, category="support",
        entities=[{"entity": "email", "value": ANNA_EMAIL, "start": 33, "end": 56}],
    )
    ticket = await actions.escalate(
        db, dm.conversation_id, queue="sales", subject=ANNA_TEXTS["dm"][:120], reason="test",
        data={"lead": {"email": ANNA_EMAIL, "company": "Quillfeather Ltd", "details": ANNA_TEXTS["dm"]}},
    )
    await actions.claim(db, ticket.id, agent.id)
    await actions.record_inbound(db, inbound(ANNA_TEXTS["dm_later"], sender=ANNA_X_ID, handle=ANNA_HANDLE))
    await actions.correct_intent(db, dm.message_id, "complaint", agent_id=agent.id)
    reply = await actions.agent_reply(db, ticket.id, agent.id, f"Sorry {ANNA_NAME}, we are on it")
    await actions.add_note(db, ticket.id, agent.id, f"{ANNA_NAME} called twice, VIP")

    own_thread = await actions.record_inbound(
        db, mention(ANNA_TEXTS["public"], sender=ANNA_X_ID, handle=ANNA_HANDLE)
    )
    own_root = (await _conversation(db, own_thread.conversation_id)).platform_ref
    stranger = await actions.record_inbound(
        db, mention("@brand me too", sender="555", handle="strangerzq", thread=own_root)
    )
    assert stranger.conversation_id == own_thread.conversation_id  # a stranger in Anna's thread
    bobs = await actions.record_inbound(db, mention(BOB_TEXT, sender="888", handle="bobbyzq"))
    bobs_root = (await _conversation(db, bobs.conversation_id)).platform_ref
    anna_in_bobs = await actions.record_inbound(
        db, mention(ANNA_TEXTS["in_bobs_thread"], sender=ANNA_X_ID, handle=ANNA_HANDLE, thread=bobs_root)
    )
    assert anna_in_bobs.conversation_id == bobs.conversation_id
    await actions.record_inbound(
        db, mention(f"@{ANNA_HANDLE} which shop was that?", sender="888", handle="bobbyzq", thread=bobs_root)
    )
    # The router escalated Bob's thread on Anna's message: the subject and lead are her words.
    bobs_ticket = await actions.escalate(
        db, bobs.conversation_id, queue="sales", subject=ANNA_TEXTS["in_bobs_thread"][:120], reason="test",
        data={"lead": {"details": f"{BOB_TEXT} / {ANNA_TEXTS['in_bobs_thread']}"}},
    )

    tg = await actions.record_inbound(
        db, inbound(ANNA_TEXTS["telegram"], sender=ANNA_TG_ID, handle=ANNA_HANDLE, channel="telegram")
    )
    await register(db, dm.contact_id, "summer-meetup")
    await register(db, tg.contact_id, "winter-meetup")

    bob_dm_text = "Bob's own DM about the Vortexmatic warranty"
    bob_dm = await actions.record_inbound(db, inbound(bob_dm_text, sender="888", handle="bobbyzq"))
    async with db.transaction() as session:  # her display name, as the channels report it with each message
        await session.execute(
            update(Contact).where(Contact.handle == ANNA_HANDLE).values(display_name=ANNA_NAME)
        )
    return Story(
        anna_x=dm.contact_id, anna_tg=tg.contact_id, bob=bob_dm.contact_id, dm_ticket=ticket.id,
        bobs_ticket=bobs_ticket.id, pending_reply=reply.id, bob_dm_text=bob_dm_text,
    )


async def _conversation(db: Database, conversation_id: int) -> Conversation:
    async with db.session() as session:
        row = await session.get(Conversation, conversation_id)
        assert row is not None
        return row


async def _every_value(db: Database) -> list[tuple[str, str]]:
    """(table, value) for every column of every row of every table the database has, as stored."""
    async with db.session() as session:
        if db.dialect == "postgresql":
            tables = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        else:
            tables = text("SELECT name FROM sqlite_master WHERE type = 'table'")
        found = []
        for name in list((await session.execute(tables)).scalars()):
            for row in (await session.execute(text(f'SELECT * FROM "{name}"'))).all():
                found.extend((name, str(value)) for value in row if value is not None)
    return found


def _traces(values: list[tuple[str, str]], needles: list[str]) -> list[tuple[str, str, str]]:
    return [
        (table, needle, value) for table, value in values for needle in needles if needle.lower() in value.lower()
    ]


# --- export ---------------------------------------------------------------------------------------------


async def test_export_prints_everything_stored_about_the_person(cli, db, make_agent, tmp_path) -> None:
    story = await _story(db, make_agent)
    result = await cli("customers", "export", f"@{ANNA_HANDLE.upper()}")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_channel = {c["contact"]["channel"]: c for c in data["contacts"]}
    assert set(by_channel) == {"x", "telegram"}
    x = by_channel["x"]
    assert x["contact"] == {**x["contact"], "handle": ANNA_HANDLE, "display_name": ANNA_NAME,
                            "platform_user_id": ANNA_X_ID}
    texts = [m["text"] for c in x["conversations"] for m in c["messages"]]
    for key in ("dm", "dm_later", "public"):
        assert ANNA_TEXTS[key] in texts
    assert f"Sorry {ANNA_NAME}, we are on it" in texts  # what was sent to her
    assert "@brand me too" not in json.dumps(data)  # the stranger's words in her thread are theirs
    assert x["other_peoples_messages_omitted"] == 1
    assert [m["text"] for m in x["messages_in_other_threads"]] == [ANNA_TEXTS["in_bobs_thread"]]
    assert BOB_TEXT not in json.dumps(data)
    ticket = next(t for t in x["tickets"] if t["id"] == story.dm_ticket)
    assert (ticket["subject"], ticket["status"], ticket["queue"]) == (ANNA_TEXTS["dm"][:120], "assigned", "sales")
    assert [n["text"] for n in ticket["notes"]] == [f"{ANNA_NAME} called twice, VIP"]
    assert x["leads"] == [{"ticket_id": story.dm_ticket, "email": ANNA_EMAIL, "company": "Quillfeather Ltd",
                           "details": ANNA_TEXTS["dm"]}]
    assert [r["event"] for r in x["event_registrations"]] == ["summer-meetup"]
    assert x["intent_corrections"] == [
        {"message_id": x["intent_corrections"][0]["message_id"], "text": ANNA_TEXTS["dm"],
         "intent": "order_problem", "corrected_intent": "complaint"}
    ]
    assert {"escalated", "claimed", "replied", "note", "intent_corrected"} <= {e["action"] for e in x["audit_events"]}
    telegram = by_channel["telegram"]["conversations"]
    assert [m["text"] for c in telegram for m in c["messages"]] == [ANNA_TEXTS["telegram"]]

    only_telegram = await cli("customers", "export", ANNA_HANDLE, "--channel", "telegram")
    assert [c["contact"]["channel"] for c in json.loads(only_telegram.stdout)["contacts"]] == ["telegram"]
    by_id = await cli("customers", "export", ANNA_X_ID)
    assert [c["contact"]["id"] for c in json.loads(by_id.stdout)["contacts"]] == [story.anna_x]

    out = tmp_path / "requests" / "anna.json"
    to_file = await cli("customers", "export", ANNA_HANDLE, "--out", str(out))
    assert to_file.exit_code == 0 and ANNA_EMAIL not in to_file.stdout
    assert json.loads(out.read_text())["contacts"][0]["contact"]["handle"] == ANNA_HANDLE
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # someone's personal data: the operator's eyes only

    unknown = await cli("customers", "export", "nobodyzq")
    assert unknown.exit_code == 1 and "no contact with the handle or user id 'nobodyzq'" in unknown.output
    bad_channel = await cli("customers", "export", ANNA_HANDLE, "--channel", "mastodon")
    assert bad_channel.exit_code == 2


# --- erase ----------------------------------------------------------------------------------------------


async def test_erase_leaves_no_trace_of_the_person_in_any_table(cli, db, make_agent) -> None:
    story = await _story(db, make_agent)
    # Her X user id too (an X DM conversation is named by it, a reply is addressed to it).  Her Telegram id
    # lives on inside Telegram message ids ("chat:message"), kept so that ingest still de-duplicates.
    needles = [ANNA_HANDLE, ANNA_NAME, ANNA_EMAIL, ANNA_X_ID, "Quillfeather", "QX-88231",
               *ANNA_TEXTS.values()]
    assert _traces(await _every_value(db), needles), "the story must put her data in the store first"

    result = await cli("customers", "erase", ANNA_HANDLE, "--yes")
    assert result.exit_code == 0, result.output
    assert "2 contacts" in result.output and "1 deliveries cancelled" in result.output

    assert _traces(await _every_value(db), needles) == []
    async with db.session() as session:
        contacts = {c.id: c for c in (await session.execute(select(Contact))).scalars()}
        for contact_id in (story.anna_x, story.anna_tg):
            pseudonym = f"erased-{contact_id}"
            assert (contacts[contact_id].handle, contacts[contact_id].display_name,
                    contacts[contact_id].platform_user_id) == (pseudonym, pseudonym, pseudonym)
        refs = [c.platform_ref for c in (await session.execute(
            select(Conversation).where(col(Conversation.contact_id).in_([story.anna_x, story.anna_tg]))
        )).scalars()]
        assert refs and all(ref.startswith("erased-") for ref in refs)  # an X DM's ref is her user id
        reply = (await session.execute(
            select(OutboxItem).where(OutboxItem.message_id == story.pending_reply)
        )).scalar_one()
        assert (reply.status, reply.last_error, reply.target) == (OutboxStatus.failed, CANCELLED_DELIVERY, {})
        ticket = await session.get(Ticket, story.dm_ticket)
        assert ticket is not None and (ticket.status, ticket.open_conversation_id) == (TicketStatus.resolved, None)
        events = list((await session.execute(
            select(TicketEvent).where(TicketEvent.ticket_id == story.dm_ticket).order_by(TicketEvent.id)
        )).scalars())
        assert events[-1].action == "erased" and events[-1].actor == "cli"
        assert events[-1].detail == {"note": "customer erased by cli"}
        assert (await session.execute(select(EventRegistration))).first() is None
        # Bob keeps his own words, in his thread and in his DM; the thread only loses Anna's.
        bobs = [m.text for m in (await session.execute(
            select(Message).where(Message.contact_id == story.bob).order_by(Message.id)
        )).scalars()]
        assert bobs == [BOB_TEXT, f"{ERASED_TEXT} which shop was that?", story.bob_dm_text]
        bobs_ticket = await session.get(Ticket, story.bobs_ticket)
        assert bobs_ticket is not None and bobs_ticket.status == TicketStatus.queued
        assert bobs_ticket.subject == ERASED_TEXT
        assert bobs_ticket.data == {"lead": {"details": f"{BOB_TEXT} / {ERASED_TEXT}"}}

    assert (await cli("customers", "export", ANNA_HANDLE)).exit_code == 1
    again = await actions.record_inbound(db, inbound("hi, it's me again", sender=ANNA_X_ID, handle=ANNA_HANDLE))
    assert again.contact_id not in (story.anna_x, story.anna_tg)  # a new contact: the old one stays erased


async def test_erase_asks_first_and_changes_nothing_when_refused(cli, db, make_agent) -> None:
    await _story(db, make_agent)
    before = await _every_value(db)
    refused = await cli("customers", "erase", ANNA_HANDLE, "--channel", "telegram", input="n\n")
    assert refused.exit_code == 1 and f"telegram user {ANNA_TG_ID} @{ANNA_HANDLE}" in refused.output
    assert sorted(await _every_value(db)) == sorted(before)
    confirmed = await cli("customers", "erase", ANNA_HANDLE, "--channel", "telegram", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    left = await cli("customers", "export", ANNA_HANDLE)
    assert [c["contact"]["channel"] for c in json.loads(left.stdout)["contacts"]] == ["x"]
    assert ANNA_TEXTS["telegram"] not in str(await _every_value(db))


# --- retention ------------------------------------------------------------------------------------------


async def _age(db: Database, contact_id: int, days: int) -> None:
    """Pretend everything of this contact happened `days` ago."""
    then = utcnow() - timedelta(days=days)
    async with db.transaction() as session:
        conversations = select(Conversation.id).where(Conversation.contact_id == contact_id)
        await session.execute(update(Contact).where(Contact.id == contact_id).values(created_at=then))
        await session.execute(update(Conversation).where(Conversation.contact_id == contact_id)
                              .values(created_at=then, updated_at=then))
        await session.execute(update(Message).where(col(Message.conversation_id).in_(conversations))
                              .values(created_at=then, handled_at=then))
        await session.execute(update(Ticket).where(Ticket.contact_id == contact_id)
                              .values(created_at=then, updated_at=then))
        resolved = col(Ticket.resolved_at).is_not(None)
        await session.execute(update(Ticket).where(Ticket.contact_id == contact_id, resolved).values(resolved_at=then))


async def _retention_story(db: Database, make_agent) -> dict[str, int]:  # type: ignore[no-untyped-def]
    agent = await make_agent()
    # Old and done: a resolved ticket, and a round the bot handled alone.
    old = await actions.record_inbound(db, inbound("zqold refund please", sender="1001", handle="oldzq"))
    old_ticket = await actions.escalate(db, old.conversation_id, queue="support", subject="zqold refund please")
    await actions.resolve(db, old_ticket.id, agent.id)
    bot_only = await actions.record_inbound(db, inbound("zqbot opening hours?", sender="1002", handle="botzq"))
    await actions.bot_reply(db, bot_only.conversation_id, "We open at nine.")
    # Old, but a person still has to act: an open ticket.
    waiting = await actions.record_inbound(db, inbound("zqwaiting still open", sender="1003", handle="waitzq"))
    await actions.escalate(db, waiting.conversation_id, queue="support", subject="zqwaiting still open")
    # Wrote long ago and again yesterday: the old round goes, the new one and the contact stay.
    loyal = await actions.record_inbound(db, inbound("zqloyal first visit", sender="1004", handle="loyalzq"))
    loyal_ticket = await actions.escalate(db, loyal.conversation_id, queue="support", subject="zqloyal first visit")
    await actions.resolve(db, loyal_ticket.id, agent.id)
    for contact_id in (old.contact_id, bot_only.contact_id, waiting.contact_id, loyal.contact_id):
        await _age(db, contact_id, 400)
    await actions.record_inbound(db, inbound("zqloyal back again", sender="1004", handle="loyalzq"))
    return {"old": old.contact_id, "bot_only": bot_only.contact_id, "waiting": waiting.contact_id,
            "loyal": loyal.contact_id}


async def test_purge_expired_erases_only_what_was_finished_before_the_cutoff(cli, db, make_agent) -> None:
    ids = await _retention_story(db, make_agent)
    off = await cli("customers", "purge-expired")
    assert off.exit_code == 2 and "FRONTDESK_RETENTION_DAYS" in off.output

    result = await cli("customers", "purge-expired", FRONTDESK_RETENTION_DAYS="365")
    assert result.exit_code == 0, result.output
    values = str(await _every_value(db))
    for gone in ("zqold", "zqbot", "We open at nine", "zqloyal first visit", "oldzq", "botzq"):
        assert gone not in values, gone
    for kept in ("zqwaiting still open", "waitzq", "zqloyal back again", "loyalzq"):
        assert kept in values, kept
    async with db.session() as session:
        handles = {c.id: c.handle for c in (await session.execute(select(Contact))).scalars()}
    assert (handles[ids["old"]], handles[ids["bot_only"]]) == (f"erased-{ids['old']}", f"erased-{ids['bot_only']}")
    assert (handles[ids["waiting"]], handles[ids["loyal"]]) == ("waitzq", "loyalzq")

    again = await cli("customers", "purge-expired", "--days", "365")
    assert again.exit_code == 0 and "0 contacts, 0 conversations, 0 messages, 0 tickets" in again.output


async def test_the_worker_applies_the_retention_while_it_runs(db, database_url, make_agent, tmp_path) -> None:
    from dataclasses import replace

    from frontdesk.app.roles import ROLE_DESK, ROLE_WORKER
    from frontdesk.app.supervisor import started

    ids = await _retention_story(db, make_agent)
    settings = Settings(database_url=database_url, var_dir=tmp_path / "var", content_dir=PROJECT_ROOT / "content",
                        nlu_url="http://127.0.0.1:9", retention_days=365, retention_interval_s=0.2)
    worker_role = replace(ROLE_WORKER, pollers=False, outbox=False, metrics_port=False)
    async with started(settings, worker_role, say=lambda _m: None) as running:
        assert "retention" in running.tasks
        for _ in range(100):
            async with db.session() as session:
                old = await session.get(Contact, ids["old"])
            if old is not None and old.handle.startswith("erased-"):
                break
            await asyncio.sleep(0.1)
    assert old is not None and old.handle == f"erased-{ids['old']}"
    assert "zqwaiting still open" in str(await _every_value(db))

    desk_role = replace(ROLE_DESK, http=False, webhooks=False, metrics_port=False)
    async with started(settings, desk_role, say=lambda _m: None) as running:
        assert "retention" not in running.tasks  # desk processes serve requests; workers do the housekeeping


async def test_retention_refuses_zero_days(db) -> None:
    with pytest.raises(ValueError, match="FRONTDESK_RETENTION_DAYS"):
        await erase_expired(db, older_than_days=0)


# --- corrections exported for training --------------------------------------------------------------------


async def test_exported_corrections_are_anonymised_like_the_corpora(cli, db, make_agent, tmp_path) -> None:
    agent = await make_agent()
    written = (
        "@brand my order #48213 never came, ask @annazq7 or mail annabel.zq7@example.com, "
        "call +44 20 7946 0958, see https://example.com/track?id=QX88231 and order QX-88231 or 5512346"
    )
    recorded = await actions.record_inbound(db, inbound(written, sender="4242", handle=ANNA_HANDLE))
    await actions.correct_intent(db, recorded.message_id, "order_problem", agent_id=agent.id)
    output = tmp_path / "corrections.yml"
    result = await cli("nlu", "export-corrections", "--output", str(output))
    assert result.exit_code == 0, result.output
    exported = output.read_text(encoding="utf-8")
    for private in (ANNA_HANDLE, "annabel", "7946", "example.com", "48213", "88231", "5512346"):
        assert private not in exported, private
    [example] = yaml.safe_load(exported)["nlu"][0]["examples"].splitlines()
    assert example == (
        "- @Brand my order (order) never came, ask @user or mail (email), call (phone), "
        "see https://t.co/x and order (order) or (order)"
    )


def test_order_numbers_are_the_nlu_projects_own() -> None:
    """The anonymiser's order numbers are the NLU's own (nlu/project/data/entities.yml's `order_number`)."""
    from nlu.anonymise import ORDER_NUMBER_PATTERNS

    entities = yaml.safe_load((PROJECT_ROOT / "nlu" / "project" / "data" / "entities.yml").read_text())
    [block] = [b for b in entities["nlu"] if b.get("regex") == "order_number"]
    assert tuple(line.removeprefix("- ") for line in block["examples"].splitlines()) == ORDER_NUMBER_PATTERNS
