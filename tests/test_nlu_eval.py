"""`frontdesk nlu eval`: CSV validation, the scoring arithmetic, and the command end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from frontdesk.core.vocabulary import CATEGORIES
from nlu.eval import EvalDataError, load_eval_csv, percentile, score
from nlu.machine import MachineSpeed, is_local
from tests.fixtures.nlu import MINI_PROJECT, MINI_TAXONOMY, NLUTestProject

ROOT = Path(__file__).resolve().parent.parent
SMALL_CSV = ROOT / "tests" / "data" / "nlu_eval_small.csv"


def run_frontdesk(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frontdesk", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_machine_speed_is_only_claimed_for_a_server_on_this_machine() -> None:
    assert is_local("http://127.0.0.1:5005") and is_local("http://localhost:5005") and is_local("http://[::1]:1")
    assert not is_local("http://nlu.internal:5005") and not is_local("http://10.0.0.7:5005")
    unmeasured = MachineSpeed(None, None, "the server at http://nlu.internal:5005 is not on this machine")
    assert unmeasured.as_dict() == {"measured": False, "reason": unmeasured.unmeasured_because}
    assert "not measured" in unmeasured.describe()


# --- CSV validation -----------------------------------------------------------------------------


def test_csv_other_columns_are_ignored_and_categories_normalised(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('id,category,text\n1, Sales ,how much?\n2,human,"a person, please"\n')
    rows = load_eval_csv(path)
    assert [(r.text, r.category, r.line) for r in rows] == [
        ("how much?", "sales", 2),
        ("a person, please", "human", 3),
    ]


def test_csv_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("message,category\nhello,smalltalk\n")
    with pytest.raises(EvalDataError, match="missing column\\(s\\) text"):
        load_eval_csv(path)


def test_csv_unknown_category_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("text,category\nhello,smalltalk\nwhere is my order,complaint\n")
    with pytest.raises(EvalDataError) as caught:
        load_eval_csv(path)
    assert (
        "line 3" in str(caught.value)
        and "'complaint'" in str(caught.value)
        and "support" in str(caught.value)
    )


def test_csv_without_rows_or_with_empty_text_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("text,category\n")
    with pytest.raises(EvalDataError, match="no rows"):
        load_eval_csv(empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("text,category\n  ,other\n")
    with pytest.raises(EvalDataError, match="line 2: empty text"):
        load_eval_csv(blank)


def test_eval_command_reports_csv_errors_before_starting_anything(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text,category\nhi,smalltalk\nprice?,pricing\n")
    done = run_frontdesk("nlu", "eval", str(path), "--json", timeout=60)
    assert done.returncode == 1
    assert "line 3" in done.stderr and "'pricing'" in done.stderr
    assert done.stdout == ""


# --- scoring arithmetic -------------------------------------------------------------------------


def test_scores_match_hand_computed_values() -> None:
    truth = ["support", "support", "support", "sales", "sales", "human"]
    predicted = ["support", "support", "sales", "sales", "other", "human"]
    per, macro, confusion = score(truth, predicted)
    assert per["support"].precision == 1.0 and per["support"].recall == pytest.approx(2 / 3)
    assert per["sales"].precision == 0.5 and per["sales"].recall == 0.5
    assert per["other"].f1 == 0.0 and per["other"].support == 0
    # macro over support, sales, human, other (event and smalltalk never occur)
    assert macro == pytest.approx((0.8 + 0.5 + 1.0 + 0.0) / 4)
    s, o = CATEGORIES.index("sales"), CATEGORIES.index("other")
    assert confusion[s][o] == 1 and sum(map(sum, confusion)) == 6


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


# --- the command, against real Rasa servers ------------------------------------------------------


def _check_report(report: dict, n: int) -> None:
    assert report["n"] == n
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert set(report["per_category"]) == set(CATEGORIES)
    for scores in report["per_category"].values():
        assert set(scores) >= {"precision", "recall", "f1", "support"}
        assert all(0.0 <= scores[k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert sum(s["support"] for s in report["per_category"].values()) == n
    matrix = report["confusion"]["matrix"]
    assert report["confusion"]["labels"] == list(CATEGORIES)
    assert len(matrix) == 6 and all(len(row) == 6 for row in matrix) and sum(map(sum, matrix)) == n
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]


@pytest.mark.rasa
def test_eval_json_against_a_running_server(nlu_server_url: str, nlu_project: NLUTestProject) -> None:
    done = run_frontdesk(
        "nlu", "eval", str(SMALL_CSV), "--json",
        "--project", str(nlu_project.project_dir), "--taxonomy", str(nlu_project.taxonomy_path),
        env={"FRONTDESK_NLU_URL": nlu_server_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    _check_report(report, n=18)
    assert report["macro_f1"] > 0.3, "a trained model must beat chance (1/6) on plain messages"
    assert "eval: parsed 18/18" in done.stderr
    # the server is on this machine, so the latency comes with this machine's speed
    machine = report["machine"]
    assert machine["measured"], machine
    assert machine["one_core_gflops"] > 1 and machine["memory_read_gb_per_s"] > 0.1


@pytest.mark.rasa
@pytest.mark.timeout(1800)  # trains Rasa's default pipeline (100 + 100 epochs) on a cold cache
def test_eval_baseline_trains_the_default_pipeline_and_compares(rasa_venv: Path) -> None:
    """Always on the small test project: the default pipeline trains 100+100 epochs."""
    done = run_frontdesk(
        "nlu", "eval", str(SMALL_CSV), "--json", "--baseline",
        "--project", str(MINI_PROJECT), "--taxonomy", str(MINI_TAXONOMY),
        env={"FRONTDESK_NLU_URL": ""}, timeout=1700,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    _check_report(out["model"], n=18)
    _check_report(out["baseline"], n=18)
    assert out["delta_macro_f1"] == pytest.approx(
        out["model"]["macro_f1"] - out["baseline"]["macro_f1"], abs=1e-3
    )
    assert "training the baseline" in done.stderr


@pytest.mark.rasa
def test_eval_tables_for_people(nlu_server_url: str, nlu_project: NLUTestProject) -> None:
    done = run_frontdesk(
        "nlu", "eval", str(SMALL_CSV),
        "--project", str(nlu_project.project_dir), "--taxonomy", str(nlu_project.taxonomy_path),
        env={"FRONTDESK_NLU_URL": nlu_server_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "macro-F1" in done.stdout and "confusion (rows: true, columns: predicted)" in done.stdout
    assert "parse latency: p50" in done.stdout
    assert "machine: one core" in done.stdout and "GFLOP/s" in done.stdout
