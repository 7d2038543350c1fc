"""Rasa's HTTP API requires the NLU token: nobody who merely reaches its port can parse, train or swap models.

The token is FRONTDESK_NLU_AUTH_TOKEN, or one generated into var/nlu-auth-token (0600) that every process
sharing the var directory uses; it never appears on a command line, in a log or in an error message.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from frontdesk.core.settings import PROJECT_ROOT, Settings
from nlu.auth import AUTH_TOKEN_ENV, nlu_auth_token, token_path
from nlu.client import NLUClient, NLUUnauthorized
from nlu.serving import free_port
from tests.fixtures.nlu import MINI_PROJECT, MINI_TAXONOMY

# --- the token itself ---------------------------------------------------------------------------------


def test_a_generated_token_is_private_and_shared_by_every_process_using_the_var_dir(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", nlu_auth_token=None)
    first = nlu_auth_token(settings)
    path = token_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and path.read_text().strip() == first
    assert nlu_auth_token(Settings(var_dir=tmp_path / "var", nlu_auth_token=None)) == first
    assert nlu_auth_token(Settings(var_dir=tmp_path / "other", nlu_auth_token=None)) != first


def test_a_token_file_others_could_read_is_replaced(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", nlu_auth_token=None)
    leaked = nlu_auth_token(settings)
    token_path(settings).chmod(0o644)
    fresh = nlu_auth_token(settings)
    assert fresh != leaked and stat.S_IMODE(token_path(settings).stat().st_mode) == 0o600


def test_the_configured_token_wins_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", nlu_auth_token=SecretStr("configured-token-0123456789abcdef"))
    assert nlu_auth_token(settings) == "configured-token-0123456789abcdef"
    assert not token_path(settings).exists()


# --- against the real Rasa server -------------------------------------------------------------------------


def _rasa_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["pgrep", "-f", f" run --enable-api .*-p {port}$"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.rasa
async def test_rasa_refuses_every_api_call_without_the_token(nlu_server_url: str, nlu_settings: Settings) -> None:
    token = nlu_auth_token(nlu_settings)
    async with httpx.AsyncClient(base_url=nlu_server_url, timeout=30) as http:
        body = {"text": "my order never arrived"}
        assert (await http.post("/model/parse", json=body)).status_code == 401
        assert (await http.post("/model/parse", json=body, params={"token": "guess"})).status_code == 401
        assert (await http.get("/status")).status_code == 401
        # What an open --enable-api also allowed: swapping the model for a file of the caller's choosing.
        assert (await http.put("/model", json={"model_file": "/tmp/evil.tar.gz"})).status_code == 401
        parsed = await http.post("/model/parse", json=body, params={"token": token})
        assert parsed.status_code == 200 and parsed.json()["intent"]["name"]


@pytest.mark.rasa
async def test_the_client_sends_the_token_and_a_wrong_one_names_the_setting(
    nlu_server_url: str, nlu_settings: Settings
) -> None:
    async with NLUClient.from_settings(nlu_settings, nlu_server_url) as client:
        assert (await client.parse("where is my parcel")).intent
    wrong = nlu_settings.model_copy(update={"nlu_auth_token": SecretStr("wrong-token-0123456789abcdef")})
    async with NLUClient.from_settings(wrong, nlu_server_url) as client:
        with pytest.raises(NLUUnauthorized) as caught:
            await client.parse("where is my parcel")
    message = str(caught.value)
    assert "FRONTDESK_NLU_AUTH_TOKEN" in message and "401" in message
    assert "wrong-token" not in message and nlu_auth_token(nlu_settings) not in message
    assert caught.value.attempts == 1, "a refused token is not retried"


@pytest.mark.rasa
async def test_the_token_is_on_no_command_line_and_in_no_log(nlu_server_url: str, nlu_settings: Settings) -> None:
    token = nlu_auth_token(nlu_settings)
    async with NLUClient.from_settings(nlu_settings, nlu_server_url) as client:
        await client.parse("hello there")  # a request Rasa could have logged, URL and all
    pid = _rasa_pid(nlu_server_url)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert "--enable-api" in cmdline and token not in cmdline
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    assert not [v for v in environ if v.startswith("FRONTDESK_") and not v.startswith(AUTH_TOKEN_ENV + "=")], (
        "Rasa gets none of the app's settings (their secrets)"
    )
    log = (nlu_settings.logs_dir / "rasa-nlu.log").read_text(errors="replace")
    assert "=== " in log and token not in log


@pytest.mark.rasa
def test_nlu_serve_generates_a_token_that_other_commands_on_the_same_var_dir_use(
    tmp_path: Path, rasa_venv: Path
) -> None:
    """No FRONTDESK_NLU_AUTH_TOKEN: `nlu serve` makes one, `nlu parse` in another process finds it."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "models").symlink_to(PROJECT_ROOT / "var" / "models")  # the cached mini model: no training
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    env.update(FRONTDESK_VAR_DIR=str(var), FRONTDESK_RASA_VENV=str(rasa_venv),
               FRONTDESK_TAXONOMY_PATH=str(MINI_TAXONOMY))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "frontdesk", "nlu", "serve", "--project", str(MINI_PROJECT), "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert serve.stderr is not None
        seen = []
        for line in serve.stderr:
            seen.append(line)
            if "nlu: Rasa ready on" in line:
                break
        else:
            raise AssertionError(f"frontdesk nlu serve exited {serve.wait()}: {''.join(seen)}")
        token_file = var / "nlu-auth-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()

        def parse(var_dir: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "frontdesk", "nlu", "parse", "where is my order", "--project", str(MINI_PROJECT)],
                cwd=PROJECT_ROOT, env={**env, "FRONTDESK_VAR_DIR": str(var_dir), "FRONTDESK_NLU_URL": url},
                capture_output=True, text=True, timeout=120,
            )

        shared = parse(var)
        assert shared.returncode == 0, shared.stderr
        assert json.loads(shared.stdout)["category"]
        stranger = parse(tmp_path / "another-var")  # another var dir: another generated token
        assert stranger.returncode == 1
        assert "401" in stranger.stderr and "FRONTDESK_NLU_AUTH_TOKEN" in stranger.stderr
        assert httpx.get(f"{url}/status", timeout=10).status_code == 401
        assert httpx.get(f"{url}/status", params={"token": token}, timeout=10).status_code == 200
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    printed = "".join(seen) + (serve.stderr.read() if serve.stderr else "") + shared.stderr + stranger.stderr
    assert token not in printed
    assert token not in (var / "logs" / "rasa-nlu.log").read_text(errors="replace")


@pytest.mark.rasa
def test_the_nlu_images_entrypoint_and_health_check_use_the_token(tmp_path: Path, rasa_venv: Path) -> None:
    """deploy/docker/nlu-entrypoint.sh with the real Rasa: behind the token, which is not on its command line;
    the image's health check sends it from the environment and never prints it."""
    from nlu.training import model_path_for, training_inputs
    from tests.fixtures.nlu import NLUTestProject, nlu_test_settings

    docker = PROJECT_ROOT / "deploy" / "docker"
    mini = nlu_test_settings(NLUTestProject("mini", MINI_PROJECT, MINI_TAXONOMY))
    model = model_path_for(mini, training_inputs(mini, MINI_PROJECT))  # trained before the first Rasa test
    token = "-entrypoint-token-0123456789abcdef"  # a leading "-" must not read as an option
    port = free_port()
    env = {"PATH": f"{rasa_venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(MINI_PROJECT),
           "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": str(tmp_path / "cache"),
           "LOG_LEVEL_LIBRARIES": "INFO",  # what an operator might set: the entrypoint keeps the access log off
           "FRONTDESK_NLU_AUTH_TOKEN": token}
    log_path = tmp_path / "rasa.log"
    with log_path.open("wb") as log:
        rasa = subprocess.Popen(
            [str(docker / "nlu-entrypoint.sh"), "--enable-api", "--interface", "127.0.0.1", "--port", str(port),
             "--model", str(model)],
            cwd=MINI_PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    health_template = f"http://127.0.0.1:{port}/status?token=$FRONTDESK_NLU_AUTH_TOKEN"

    def health(token_in_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(docker / "healthcheck.py")], capture_output=True, text=True, timeout=30,
            env={"PATH": "/usr/bin:/bin", "FRONTDESK_HEALTHCHECK_URL": health_template,
                 "FRONTDESK_NLU_AUTH_TOKEN": token_in_env},
        )

    try:
        for _ in range(240):
            assert rasa.poll() is None, log_path.read_text(errors="replace")[-3000:]
            if health(token).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("Rasa never became healthy:\n" + log_path.read_text(errors="replace")[-3000:])
        url = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{url}/model/parse", json={"text": "hi"}, timeout=30).status_code == 401
        assert httpx.post(f"{url}/model/parse", json={"text": "hi"}, params={"token": token}, timeout=30).is_success
        assert token not in Path(f"/proc/{rasa.pid}/cmdline").read_bytes().decode()
        refused = health("not-the-token-0123456789")
        assert refused.returncode == 1 and "401" in refused.stderr
        assert "not-the-token" not in refused.stderr and "$FRONTDESK_NLU_AUTH_TOKEN" in refused.stderr
    finally:
        os.killpg(rasa.pid, signal.SIGTERM)
        try:
            rasa.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(rasa.pid, signal.SIGKILL)
            rasa.wait()
    assert token not in log_path.read_text(errors="replace")
