"""The listening poller against the X emulator through tweepy's real client, on SQLite and PostgreSQL: one
search per rule, `since_id` cursors in channel_cursors, each post stored once, the brand's own posts skipped,
a rule X refuses does not stop the others, it polls only while the account's leader lease is held, and the
rules come from content/listening.yml with X's limits checked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tweepy.asynchronous import AsyncClient

from bot.channels.leading import PollingLeader
from bot.channels.x.listening import ListeningPoller
from bot.content_store import load_bundle
from bot.listening import ListeningClassifier
from bot.listening_rules import ListeningError, ListeningRule, ListeningRules, load_listening
from frontdesk.core.settings import PROJECT_ROOT
from sandbox.server import RunningSandbox
from sandbox.x.control_client import XSandboxControl
from storage import listening
from storage.cursors import get_cursor
from storage.db import Database

CONTENT = PROJECT_ROOT / "content"
RULES = ListeningRules(rules=(
    ListeningRule("brand", "acme OR #acme", ("hiring",)),
    ListeningRule("rocket", '"acme rocket"'),
))


def _poller(db: Database, client: AsyncClient, sb: RunningSandbox, rules: ListeningRules = RULES) -> ListeningPoller:
    bundle = load_bundle(CONTENT, CONTENT / "taxonomy.yml")
    classifier = ListeningClassifier(None, lambda: bundle, confidence_threshold=0.5)  # the NLU-down path
    return ListeningPoller(db, client, sb.x.brand.id, rules=lambda: rules, classify=classifier.classify,
                           brand_username=sb.x.brand.username, interval_s=0.05, floor_s=0.01)


async def test_each_rule_keeps_its_since_id_and_a_post_is_stored_once(
    db: Database, x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox, x_requests
) -> None:
    poller = _poller(db, x_client, x_sandbox)
    first = await x_control.post("carol", "the acme rocket is broken again")
    await x_control.post("dave", "acme is hiring, apply now")  # excluded
    assert await poller.poll_once() == 1
    searches = [r for r in x_requests if r.path == "/2/tweets/search/recent"]
    assert len(searches) == 2  # one per rule
    assert await get_cursor(db, f"x:{x_sandbox.x.brand.id}:listening:brand:since_id") == first["id"]
    assert await get_cursor(db, f"x:{x_sandbox.x.brand.id}:listening:rocket:since_id") == first["id"]

    second = await x_control.post("erin", "#acme love it")
    assert await poller.poll_once() == 1
    assert await poller.poll_once() == 0
    items = await listening.list_items(db)
    assert [i.platform_post_id for i in items] == [second["id"], first["id"]]
    assert items[1].rule == "brand" and items[1].sentiment.value == "negative"  # "broken"
    assert items[0].sentiment.value == "positive" and items[0].intent is None  # NLU down: words only
    assert items[0].category == "other"  # the taxonomy's fallback


async def test_the_brands_own_posts_are_skipped_and_a_mention_is_marked_addressed(
    db: Database, x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    await x_client.create_tweet(text="acme news from the brand itself", user_auth=True)
    mention = await x_control.mention("carol", "acme ate my order")
    poller = _poller(db, x_client, x_sandbox)
    assert await poller.poll_once() == 1
    [item] = await listening.list_items(db)
    assert item.platform_post_id == mention["id"] and item.addressed_brand


async def test_a_rule_x_refuses_is_reported_and_the_others_still_run(
    db: Database, x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    rules = ListeningRules(rules=(ListeningRule("bad", "acme place_country:US"), ListeningRule("good", "acme")))
    await x_control.post("carol", "acme again")
    poller = _poller(db, x_client, x_sandbox, rules)
    assert await poller.poll_once() == 1
    assert "place_country" in poller.rule_errors["bad"]


async def test_it_polls_only_while_the_account_lease_is_held(
    db: Database, x_client: AsyncClient, x_control: XSandboxControl, x_sandbox: RunningSandbox
) -> None:
    poller = _poller(db, x_client, x_sandbox)
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(poller.run()))

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        tasks.clear()

    holder = PollingLeader(db, "x:listening-test", start, stop, lease_s=3.0, check_s=0.05)
    standby = PollingLeader(db, "x:listening-test", start, stop, lease_s=3.0, check_s=0.05)
    lead = asyncio.create_task(holder.run())
    await asyncio.wait_for(holder.first_attempt.wait(), 10)
    wait = asyncio.create_task(standby.run())
    await asyncio.wait_for(standby.first_attempt.wait(), 10)
    try:
        assert holder.leading and not standby.leading and len(tasks) == 1
        await x_control.post("carol", "acme at last")
        for _ in range(100):
            if poller.found:
                break
            await asyncio.sleep(0.05)
        assert poller.found == 1
    finally:
        for task in (lead, wait):
            task.cancel()
        await asyncio.gather(lead, wait, return_exceptions=True)
    assert tasks == []  # losing the lease (here: stopping) stops the poller


def test_the_shipped_rules_load_and_fit_xs_limit() -> None:
    rules = load_listening(CONTENT / "listening.yml")
    assert rules.names and all(len(r.search_query) <= 512 for r in rules.rules)
    assert load_listening(Path("/nonexistent/listening.yml")) == ListeningRules()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("rules:\n  - name: a\n    query: acme place_country:US\n", "operator `place_country:` is not supported"),
        ("rules:\n  - name: a\n    query: is:reply\n", "not negated"),
        ('rules:\n  - name: a\n    query: \'"acme\'\n', "unbalanced quotes"),
        ("rules:\n  - name: a\n    query: (acme\n", "unbalanced parentheses"),
        ("rules:\n  - name: a\n    query: acme is:nonsense\n", "is:retweet"),
        ("rules:\n  - name: Bad Name\n    query: acme\n", "`name` must be"),
        ("rules:\n  - name: a\n    query: acme\n  - name: a\n    query: rocket\n", "used twice"),
        ("rules:\n  - name: a\n    query: acme\n    colour: red\n", "unknown key `colour`"),
        ("tier: gold\n", "tier must be one of"),
        ("rules:\n  - name: a\n    query: " + "x" * 500 + "\n    exclude: [hiring]\n", "at most 512"),
    ],
)
def test_a_rule_x_would_refuse_names_the_file_line_and_fix(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "listening.yml"
    path.write_text(body)
    with pytest.raises(ListeningError, match=f"listening.yml:[0-9]+: .*{_escape(says)}"):
        load_listening(path)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_enterprise_tier_takes_longer_queries(tmp_path: Path) -> None:
    path = tmp_path / "listening.yml"
    path.write_text("tier: enterprise\nrules:\n  - name: a\n    query: " + "x" * 1000 + "\n")
    assert load_listening(path).rules[0].name == "a"


def test_content_check_refuses_a_bad_rule_and_lists_the_good_ones(tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from bot.content_cli import app

    for name in ("faq.yml", "events.yml", "replies.yml", "words.yml", "listening.yml", "taxonomy.yml"):
        shutil.copy(CONTENT / name, tmp_path / name)
    ok = CliRunner().invoke(app, [str(tmp_path)])
    assert ok.exit_code == 0 and "listening.yml 2 rules (self-serve): brand, checkout" in ok.output
    (tmp_path / "listening.yml").write_text("rules:\n  - name: a\n    query: acme url:x.com\n")
    bad = CliRunner().invoke(app, [str(tmp_path)])
    assert bad.exit_code == 1 and "listening.yml:2:" in bad.output and "`url:` is not supported" in bad.output
