"""The real Rasa server, trained from the session's project, on messages its training data lacks."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest

from bot.taxonomy import load_taxonomy
from frontdesk.core.settings import Settings
from nlu.auth import nlu_auth_token
from nlu.client import NLUClient
from nlu.serving import RasaServerError, running_nlu_server, start_nlu_server
from tests.fixtures.nlu import NLUTestProject

pytestmark = pytest.mark.rasa

# (message, expected category, expected entities as {entity: value}); none of these texts is in the
# training data of the project they are written for.
UNSEEN: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "mini": [
        ("hey @acme order QZ-48213 still hasn't shown up", "support", {"order_id": "QZ-48213"}),
        ("the speaker arrived smashed, I want a refund", "support", {"product": "speaker"}),
        ("what does the keyboard sell for?", "sales", {"product": "keyboard"}),
        ("what time does the meetup kick off", "event", {}),
        ("please get me a real person to talk to", "human", {}),
        ("thanks so much for the help", "smalltalk", {}),
    ],
    # The real project (nlu/project, content/taxonomy.yml), checked against the nlu-model branch's data:
    # none of these texts is in nlu/project/data.
    "real": [
        ("@brand it's been two weeks and my order still hasn't arrived", "support", {}),
        (
            "my order 88812345 never showed up, email me at jo.doe@example.com",
            "support",
            {"order_number": "88812345", "email": "jo.doe@example.com"},
        ),
        ("my headphones stopped working after two days", "support", {"product": "headphones"}),
        ("how much does the premium plan cost per month?", "sales", {}),
        ("is the meetup on 12/03 still happening?", "event", {"date": "12/03"}),
        ("what time does the launch event start on saturday?", "event", {}),
        ("I want to talk to a real person, not a bot", "human", {}),
        ("cheers, you lot sorted that really quickly, appreciate it", "smalltalk", {}),
        ("how many calories are in a banana", "other", {}),
    ],
}


def _cases(project: NLUTestProject) -> list[tuple[str, str, dict[str, str]]]:
    if project.name not in UNSEEN:
        pytest.skip(f"no unseen-message cases written for the {project.name!r} project")
    return UNSEEN[project.name]


async def test_unseen_messages_get_the_right_category_and_entities(
    nlu_client: NLUClient, nlu_project: NLUTestProject
) -> None:
    taxonomy = load_taxonomy(nlu_project.taxonomy_path)
    wrong = []
    for text, category, entities in _cases(nlu_project):
        result = await nlu_client.parse(text)
        found = {e.entity: e.value for e in result.entities}
        routed = taxonomy.category(result.intent)
        if routed != category or any(found.get(k) != v for k, v in entities.items()):
            wrong.append((text, routed, result.intent, found))
    assert not wrong, f"misclassified ({nlu_project.name} project): {wrong}"


async def test_entity_offsets_point_into_the_message(
    nlu_client: NLUClient, nlu_project: NLUTestProject
) -> None:
    with_entities = [c for c in _cases(nlu_project) if c[2]]
    if not with_entities:
        pytest.skip(f"no entity cases written for the {nlu_project.name!r} project")
    for text, _, expected in with_entities:
        result = await nlu_client.parse(text)
        for entity in result.entities:
            assert entity.start is not None and entity.end is not None
            assert 0 <= entity.start < entity.end <= len(text)
            if entity.entity in expected:  # (synonym mapping may rename other values)
                assert text[entity.start : entity.end] == expected[entity.entity]


async def test_parse_result_is_a_ranked_probability(nlu_client: NLUClient, nlu_project: NLUTestProject) -> None:
    result = await nlu_client.parse("hello, is anyone there?")
    assert 0.0 <= result.confidence <= 1.0
    scores = [r.confidence for r in result.intent_ranking]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert result.intent in {*load_taxonomy(nlu_project.taxonomy_path).intents, "nlu_fallback"}


async def test_status_names_the_loaded_model(nlu_client: NLUClient) -> None:
    status = await nlu_client.status()
    assert status["model_file"].startswith("nlu-") and status["model_file"].endswith(".tar.gz")


async def test_configured_port_in_use_is_refused_with_the_fix(
    nlu_settings: Settings, nlu_server_url: str
) -> None:
    busy_port = int(nlu_server_url.rsplit(":", 1)[1])
    with pytest.raises(RasaServerError) as caught:
        await start_nlu_server(nlu_settings, port=busy_port, progress=None)
    assert "FRONTDESK_NLU_URL" in str(caught.value) and str(busy_port) in str(caught.value)


def _pgrep(pattern: str) -> list[str]:
    return subprocess.run(
        ["pgrep", "-f", pattern], capture_output=True, text=True, check=False
    ).stdout.split()


async def test_leaving_the_context_stops_rasa_and_its_process_group(
    nlu_settings: Settings, nlu_server_url: str
) -> None:
    async with running_nlu_server(nlu_settings, progress=None) as url:
        async with httpx.AsyncClient() as http:
            token = nlu_auth_token(nlu_settings)
            assert (await http.get(f"{url}/status", params={"token": token})).status_code == 200
        pids = [int(p) for p in _pgrep(f" run --enable-api .*-p {url.rsplit(':', 1)[1]}$")]
        assert pids, "rasa run should be visible while the context is open"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, signal.SIGCONT)  # signal 18 is harmless; the group must be gone
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"{url}/status")
