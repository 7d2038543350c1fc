"""`frontdesk agents …` and `frontdesk nlu export-corrections`, run as the CLI against the `db` store."""

from __future__ import annotations

import yaml

from nlu.retrain import render_rasa_nlu
from storage import actions
from storage.agents import agent_for_telegram_user, authenticate, list_agents
from tests.fixtures.desk import inbound


async def test_add_with_a_hidden_confirmed_prompt(cli, db) -> None:
    result = await cli("agents", "add", "--email", "Ann@Example.com", "--name", "Ann", "--admin",
                       input="s3cret-passw0rd\ns3cret-passw0rd\n")
    assert result.exit_code == 0, result.output
    assert "added admin Ann <ann@example.com>" in result.output
    assert "s3cret-passw0rd" not in result.output  # the prompt does not echo
    agent = await authenticate(db, "ann@example.com", "s3cret-passw0rd")
    assert agent is not None and agent.role == "admin"


async def test_add_refuses_a_mistyped_confirmation(cli, db) -> None:
    result = await cli("agents", "add", "--email", "ann@example.com", "--name", "Ann",
                       input="first-password\nsecond-password\n")
    assert result.exit_code != 0
    assert "do not match" in result.output.lower() or "don't match" in result.output.lower()
    assert await list_agents(db) == []


async def test_add_from_stdin_list_and_errors(cli, db) -> None:
    ok = await cli("agents", "add", "--email", "bob@example.com", "--name", "Bob Builder", "--password-stdin",
                   input="from-a-script-123\n")
    assert ok.exit_code == 0, ok.output
    assert await authenticate(db, "bob@example.com", "from-a-script-123") is not None
    again = await cli("agents", "add", "--email", "bob@example.com", "--name", "Bob", "--password-stdin",
                      input="another-password\n")
    assert again.exit_code == 1 and "already exists" in again.output
    short = await cli("agents", "add", "--email", "cid@example.com", "--name", "Cid", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    empty = await cli("agents", "add", "--email", "cid@example.com", "--name", "Cid", "--password-stdin", input="\n")
    assert empty.exit_code == 2

    listed = await cli("agents", "list")
    assert listed.exit_code == 0
    lines = listed.output.strip().splitlines()
    assert lines[0].split() == ["ID", "EMAIL", "NAME", "ROLE", "ACTIVE", "TELEGRAM"]
    assert len(lines) == 2 and "bob@example.com" in lines[1] and "Bob Builder" in lines[1] and " agent " in lines[1]


async def test_list_on_an_empty_store_says_how_to_start(cli) -> None:
    result = await cli("agents", "list")
    assert result.exit_code == 0 and "frontdesk agents add" in result.output


async def test_disable_locks_the_agent_out(cli, db) -> None:
    await cli("agents", "add", "--email", "dan@example.com", "--name", "Dan", "--password-stdin", input="dans-password\n")
    result = await cli("agents", "disable", "dan@example.com")
    assert result.exit_code == 0 and "disabled Dan" in result.output
    assert await authenticate(db, "dan@example.com", "dans-password") is None
    assert "no" in (await cli("agents", "list")).output.splitlines()[1].split()
    enabled = await cli("agents", "enable", "dan@example.com")
    assert enabled.exit_code == 0
    assert await authenticate(db, "dan@example.com", "dans-password") is not None
    unknown = await cli("agents", "disable", "nobody@example.com")
    assert unknown.exit_code == 1 and "frontdesk agents list" in unknown.output


async def test_link_telegram(cli, db) -> None:
    await cli("agents", "add", "--email", "eve@example.com", "--name", "Eve", "--password-stdin", input="eves-password\n")
    result = await cli("agents", "link-telegram", "eve@example.com", "424242")
    assert result.exit_code == 0 and "424242" in result.output
    linked = await agent_for_telegram_user(db, 424242)
    assert linked is not None and linked.email == "eve@example.com"
    bad = await cli("agents", "link-telegram", "eve@example.com", "not-a-number")
    assert bad.exit_code == 2


async def test_export_corrections_writes_rasa_nlu_yaml(cli, db, make_agent, tmp_path) -> None:
    agent = await make_agent()
    corrected: list[tuple[str, str]] = [
        ("where's my refund??", "refund_request"),
        ("Where's my   refund??", "refund_request"),  # the same example again: written once
        ("I want my money back\nfor order 12", "refund_request"),
        ("is the [beta](meetup) still on", "event_info"),
    ]
    for n, (text, intent) in enumerate(corrected):
        recorded = await actions.record_inbound(db, inbound(text, sender=f"c-{n}", handle=f"c{n}"))
        await actions.record_nlu_result(db, recorded.message_id, intent="greet", confidence=0.4, category="smalltalk")
        await actions.correct_intent(db, recorded.message_id, intent, agent_id=agent.id)
    await actions.record_inbound(db, inbound("not corrected", sender="c-99", handle="x"))

    output = tmp_path / "nlu" / "corrections.yml"
    result = await cli("nlu", "export-corrections", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "wrote 3 example(s)" in result.output and "refund_request 2" in result.output
    data = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert data["version"] == "3.1"
    by_intent = {block["intent"]: block["examples"] for block in data["nlu"]}
    assert set(by_intent) == {"refund_request", "event_info"}
    assert by_intent["refund_request"] == "- where's my refund??\n- I want my money back for order 12\n"
    # Brackets a customer typed must not turn into a Rasa entity annotation.
    assert by_intent["event_info"] == "- is the (beta)(meetup) still on\n"
    assert "not corrected" not in output.read_text(encoding="utf-8")


def test_an_export_without_corrections_is_still_valid_yaml() -> None:
    data = yaml.safe_load(render_rasa_nlu({}))
    assert data == {"version": "3.1", "nlu": []}
