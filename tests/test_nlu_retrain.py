"""`frontdesk nlu retrain`: agents' labels (intent corrections, queue moves) become a model that is kept only
if it is not worse on the dev sets, and the running Rasa serves it without a restart.

The end-to-end test trains the small project (tests/data/nlu_mini) for real and scores it with a real Rasa,
against the store on SQLite and PostgreSQL; the rules (what is learned, what counts as worse) are tested
on their own below it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from frontdesk.core.settings import PROJECT_ROOT
from nlu.client import IntentScore, NLUClient
from nlu.eval import EvalReport
from nlu.retrain import DevScores, Label, eval_keys, intent_for_move, training_labels, verdict
from nlu.serving import running_nlu_server
from storage import actions
from storage.models import Queue
from tests.fixtures.desk import inbound
from tests.fixtures.nlu import MINI_PROJECT, MINI_TAXONOMY, NLUTestProject, nlu_test_settings

MINI = NLUTestProject("mini", MINI_PROJECT, MINI_TAXONOMY)
MINI_DEV = PROJECT_ROOT / "tests" / "data" / "nlu_mini" / "dev.csv"
# Customers' words the small model gets wrong, with what agents said they meant.
MISROUTED = "the gizmo turned up with a smashed screen"


async def test_a_corrected_misroute_is_fixed_after_retraining_and_the_dev_score_holds(
    cli, db, make_agent, rasa_venv, tmp_path: Path
) -> None:
    agent = await make_agent()
    corrections = tmp_path / "corrections.yml"
    settings = nlu_test_settings(MINI, nlu_corrections_path=tmp_path / "none.yml")
    async with running_nlu_server(settings, log_name="rasa-nlu-retrain-test.log") as url:
        async with NLUClient.from_settings(settings, url) as client:
            before = (await client.parse(MISROUTED)).intent
            assert before != "order_problem", "the small model already gets this right: pick another text"

            for n, text in enumerate([MISROUTED, "gizmo arrived with a smashed screen", "my gizmo came smashed"]):
                recorded = await actions.record_inbound(db, inbound(text, sender=f"s-{n}", handle=f"s{n}"))
                await actions.correct_intent(db, recorded.message_id, "order_problem", agent_id=agent.id)
            # A queue move is a label too: the opener of a ticket moved to sales is the sales intent.
            recorded = await actions.record_inbound(db, inbound("quote me for forty gizmos", sender="m", handle="m"))
            ticket = await actions.escalate(db, recorded.conversation_id, queue="general", priority="normal",
                                            category="other", subject="quote", reason="test")  # fmt: skip
            await actions.move_to_queue(db, ticket.id, Queue.sales, agent_id=agent.id)
            # A dev-set row an agent corrected is never trained on (the model would be scored on it).
            recorded = await actions.record_inbound(db, inbound("is the meetup free", sender="d", handle="d"))
            await actions.correct_intent(db, recorded.message_id, "event_info", agent_id=agent.id)

            result = await cli(
                "nlu", "retrain", "--json", "--dev", str(MINI_DEV), "--nlu-url", url, "--tolerance", "0.05",
                FRONTDESK_NLU_PROJECT_DIR=str(MINI_PROJECT), FRONTDESK_TAXONOMY_PATH=str(MINI_TAXONOMY),
                FRONTDESK_NLU_CORRECTIONS_PATH=str(corrections), FRONTDESK_NLU_URL="",
                # The shared model cache: the SQLite and PostgreSQL runs learn the same labels, one training.
                FRONTDESK_VAR_DIR=str(settings.var_dir),
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            report = json.loads(result.output[result.output.index("{"):])
            assert report["kept"] is True, report
            assert report["by_intent"] == {"order_problem": 3, "pricing_question": 1}
            assert report["dropped_as_eval_rows"] == 1
            assert report["candidate"]["mean_macro_f1"] >= report["current"]["mean_macro_f1"] - 0.05
            assert report["reloaded"] == url
            # The same Rasa, never restarted, now serves the kept model.
            assert (await client.status())["model_file"].endswith(Path(report["model"]).name)
            assert (await client.parse(MISROUTED)).intent == "order_problem"

    trained = yaml.safe_load(corrections.read_text(encoding="utf-8"))
    examples = {block["intent"]: block["examples"] for block in trained["nlu"]}
    assert "quote me for forty gizmos" in examples["pricing_question"]
    assert "is the meetup free" not in corrections.read_text(encoding="utf-8")

    again = await cli(
        "nlu", "retrain", "--dev", str(MINI_DEV), "--nlu-url", "http://127.0.0.1:9",
        FRONTDESK_NLU_PROJECT_DIR=str(MINI_PROJECT), FRONTDESK_TAXONOMY_PATH=str(MINI_TAXONOMY),
        FRONTDESK_NLU_CORRECTIONS_PATH=str(corrections),
    )  # fmt: skip
    assert again.exit_code == 1 and "unavailable" in again.output  # a named NLU that is down is an error


async def test_retrain_without_a_dev_set_says_which_file_is_missing(cli, tmp_path: Path) -> None:
    result = await cli("nlu", "retrain", "--dev", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "nope.csv" in result.output and "--dev" in result.output


# --- the rules -------------------------------------------------------------------------------------------


def _report(macro_f1: float) -> EvalReport:
    return EvalReport(n=10, accuracy=macro_f1, macro_f1=macro_f1, per_category={}, confusion=[], latency_ms={})


def _scores(**sets: float) -> DevScores:
    return DevScores({name: _report(f1) for name, f1 in sets.items()})


@pytest.mark.parametrize(
    ("current", "candidate", "kept"),
    [
        ({"a": 0.80, "b": 0.90}, {"a": 0.82, "b": 0.90}, True),  # better
        ({"a": 0.80, "b": 0.90}, {"a": 0.798, "b": 0.898}, True),  # within the tolerance
        ({"a": 0.80, "b": 0.90}, {"a": 0.78, "b": 0.90}, False),  # the mean falls by 0.01
        ({"a": 0.80, "b": 0.90}, {"a": 0.77, "b": 0.935}, False),  # the mean holds, one set loses 0.03
    ],
)
def test_a_candidate_is_kept_only_when_not_worse(current, candidate, kept) -> None:
    decision = verdict(_scores(**current), _scores(**candidate))
    assert decision.kept is kept, decision.reason


def test_models_scored_on_different_sets_are_not_compared() -> None:
    assert not verdict(_scores(a=0.8), _scores(b=0.9)).kept


def test_labels_are_anonymised_deduplicated_and_never_evaluation_rows(tmp_path: Path) -> None:
    dev = tmp_path / "dev.csv"
    dev.write_text("text,category\nIs the meetup FREE,event\n", encoding="utf-8")
    labels = [
        Label("my order AB-12345 is late, mail me at ann@example.com", "order_problem"),
        Label("is the meetup free", "event_info"),  # a dev row, whatever its case
        Label("hello", "greet"),
        Label("Hello", "thanks"),  # the same words again: one example, the later intent
        Label("bonjour", "renamed_intent"),
    ]
    learned = training_labels(labels, excluded=eval_keys([dev]), known_intents={"order_problem", "greet", "thanks"})
    assert learned.examples == {
        "order_problem": ["my order (order) is late, mail me at (email)"],
        "thanks": ["hello"],
    }
    assert (learned.dropped_as_eval, learned.duplicates, learned.unknown_intents) == (1, 1, ("renamed_intent",))


def test_a_queue_move_becomes_the_queues_best_ranked_intent() -> None:
    queue_of = {"greet": "general", "pricing": "sales", "demo_quote": "sales"}.get
    ranking = [IntentScore("greet", 0.6), IntentScore("demo_quote", 0.3), IntentScore("pricing", 0.1)]
    assert intent_for_move(ranking, "sales", queue_of) == "demo_quote"
    assert intent_for_move(ranking, "events", queue_of) is None
