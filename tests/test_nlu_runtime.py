"""Rasa's venv, training and serving: what names a model, finding Python 3.10, train errors, `nlu serve`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from frontdesk.core.settings import Settings
from nlu.auth import AUTH_TOKEN_ENV
from nlu.rasa_venv import RasaVenvError, find_python310, venv_hash
from nlu.serving import free_port, nlu_endpoint
from nlu.training import RasaTrainingError, train, training_inputs
from tests.fixtures.nlu import MINI_PROJECT, MINI_TAXONOMY, NLUTestProject, nlu_test_settings

ROOT = Path(__file__).resolve().parent.parent
MINI = NLUTestProject("mini", MINI_PROJECT, MINI_TAXONOMY)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(MINI_PROJECT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _hash(settings: Settings, project: Path) -> str:
    return training_inputs(settings, project).model_hash()


def test_model_name_depends_on_content_not_location(tmp_path: Path, project_copy: Path) -> None:
    settings = nlu_test_settings(MINI, nlu_corrections_path=tmp_path / "none.yml")
    assert _hash(settings, project_copy) == _hash(settings, MINI_PROJECT)


@pytest.mark.parametrize(
    "change",
    ["config.yml", "domain.yml", "data/nlu.yml", "addons/tweet_normalizer.py", "data/more/new.yml"],
)
def test_changing_any_training_input_changes_the_model(
    tmp_path: Path, project_copy: Path, change: str
) -> None:
    settings = nlu_test_settings(MINI, nlu_corrections_path=tmp_path / "none.yml")
    before = _hash(settings, project_copy)
    target = project_copy / change
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as handle:
        handle.write("\n# changed\n")
    assert _hash(settings, project_copy) != before


def test_bytecode_caches_do_not_change_the_model(tmp_path: Path, project_copy: Path) -> None:
    settings = nlu_test_settings(MINI, nlu_corrections_path=tmp_path / "none.yml")
    before = _hash(settings, project_copy)
    (project_copy / "addons" / "__pycache__").mkdir()
    (project_copy / "addons" / "__pycache__" / "tweet_normalizer.cpython-310.pyc").write_bytes(b"\0")
    assert _hash(settings, project_copy) == before


def test_agents_corrections_are_trained_on_when_exported(tmp_path: Path, project_copy: Path) -> None:
    corrections = tmp_path / "corrections.yml"
    settings = nlu_test_settings(MINI, nlu_corrections_path=corrections)
    without = _hash(settings, project_copy)
    corrections.write_text('version: "3.1"\nnlu:\n- intent: ask_human\n  examples: |\n    - operator!\n')
    inputs = training_inputs(settings, project_copy)
    assert inputs.extra_files == (corrections.resolve(),)
    assert inputs.model_hash() != without


def test_incomplete_project_fails_with_the_fix(tmp_path: Path) -> None:
    settings = nlu_test_settings(MINI)
    with pytest.raises(RasaTrainingError, match="config.yml not found.*FRONTDESK_NLU_PROJECT_DIR"):
        training_inputs(settings, tmp_path)
    (tmp_path / "config.yml").write_text("language: en\n")
    with pytest.raises(RasaTrainingError, match="no training data"):
        training_inputs(settings, tmp_path)


def test_a_python_that_is_not_310_is_refused_by_name() -> None:
    settings = Settings(rasa_python=sys.executable)  # the app's 3.11
    with pytest.raises(RasaVenvError, match="FRONTDESK_RASA_PYTHON"):
        find_python310(settings)


def test_no_python310_anywhere_says_how_to_install_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bin").mkdir()
    broken_shim = tmp_path / "bin" / "python3.10"  # like pyenv's shim when no 3.10 is selected
    broken_shim.write_text("#!/bin/sh\necho 'pyenv: python3.10: command not found' >&2\nexit 127\n")
    broken_shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(RasaVenvError) as caught:
        find_python310(Settings(rasa_python=""))
    assert "pyenv install 3.10" in str(caught.value) and str(broken_shim) in str(caught.value)


@pytest.mark.rasa
def test_the_venv_is_stamped_with_its_requirements(rasa_venv: Path) -> None:
    """The stamp makes a change to nlu/requirements-rasa.txt or constraints-rasa.txt trigger a re-install."""
    assert (rasa_venv / ".frontdesk-requirements").read_text().strip() == venv_hash()
    assert (rasa_venv / "bin" / "rasa").exists()


@pytest.mark.rasa
def test_found_python310_really_is_310(rasa_venv: Path) -> None:
    python = find_python310(Settings(rasa_python=""))
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "(3, 10)"


@pytest.mark.rasa
def test_rasa_training_error_reaches_the_user(rasa_venv: Path, project_copy: Path, tmp_path: Path) -> None:
    config = project_copy / "config.yml"
    config.write_text(config.read_text().replace("name: RegexFeaturizer", "name: NoSuchFeaturizer"))
    settings = nlu_test_settings(MINI, var_dir=tmp_path / "var")
    with pytest.raises(RasaTrainingError) as caught:
        train(settings, project_copy, progress=None)
    assert "NoSuchFeaturizer" in str(caught.value)
    assert not list((tmp_path / "var" / "models").glob("*.tar.gz")), "a failed training leaves no model"


@pytest.mark.rasa
def test_train_command_skips_a_model_it_already_has(rasa_venv: Path) -> None:
    args = [sys.executable, "-m", "frontdesk", "nlu", "train", "--project", str(MINI_PROJECT)]
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "not retraining" in again.stderr
    assert again.stdout.strip() == first.stdout.strip() and Path(again.stdout.strip()).is_file()


def _wait_ready(serve: subprocess.Popen[str]) -> str:
    """Wait for the supervisor's own "ready" line: it, not the test, must have seen Rasa up."""
    assert serve.stderr is not None
    seen = []
    for line in serve.stderr:  # ends when `serve` exits
        seen.append(line)
        if "nlu: Rasa ready on" in line:
            return "".join(seen)
    raise AssertionError(f"frontdesk nlu serve exited {serve.wait()}: {''.join(seen)}")


def _status(url: str) -> dict:
    # `frontdesk nlu serve` inherits this run's token from the environment (tests/fixtures/nlu.py).
    return httpx.get(f"{url}/status", params={"token": os.environ[AUTH_TOKEN_ENV]}, timeout=10).json()


def _rasa_pid(port: int) -> int:
    out = subprocess.run(["pgrep", "-f", f" run --enable-api .*-p {port}$"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.rasa
def test_serve_restarts_a_crashed_rasa_and_stops_on_sigterm(rasa_venv: Path) -> None:
    port = free_port()
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "frontdesk",
            "nlu",
            "serve",
            "--project",
            str(MINI_PROJECT),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env={**os.environ, "FRONTDESK_TAXONOMY_PATH": str(MINI_TAXONOMY)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(serve)
        assert _status(url)["model_file"].startswith("nlu-")
        os.kill(_rasa_pid(port), signal.SIGKILL)  # Rasa dies under the supervisor
        assert "restarting in" in _wait_ready(serve)
        assert _status(url)["model_file"].startswith("nlu-"), "the supervisor should have restarted it"
        rasa_pid = _rasa_pid(port)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    stderr = serve.stderr.read() if serve.stderr else ""
    assert "nlu: stopped" in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(rasa_pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/status", timeout=2)


async def test_nlu_endpoint_uses_a_configured_server_without_starting_rasa(tmp_path: Path) -> None:
    settings = Settings(nlu_url="http://127.0.0.1:5999/", var_dir=tmp_path / "var", nlu_project_dir=tmp_path)
    async with nlu_endpoint(settings, progress=None) as url:
        assert url == "http://127.0.0.1:5999"
    assert not (tmp_path / "var").exists(), "nothing trained, installed or logged"
