"""Deployment files: rendered and checked by the real tools, and cross-checked against the code.

The tools (kubectl with its built-in kustomize, Debian's docker-compose, hadolint, kubernetes-validate)
are installed by `make test` (its `tools` target and the test extras).  Outside CI a missing tool
skips its test with the reason; under CI=true it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from frontdesk.core.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
OVERLAYS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
DOCKERFILES = {"app": DOCKER / "Dockerfile", "nlu": DOCKER / "Dockerfile.nlu"}
K8S_VERSION = "1.30.0"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Commands the deployment runs that other parts of Frontdesk register; until they land on this branch
# the check for them is an expected failure, not a silent pass.
def _tool(name: str) -> str:
    """The path of a tool: the virtualenv's bin first (pip-installed tools), then PATH."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: run `make tools` (or `make test`, which installs it)"
    if IN_CI:
        pytest.fail(message + " — CI=true requires it")
    pytest.skip(message)


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


# --- parsing helpers ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Dockerfile:
    stages: list[list[Instruction]] = field(default_factory=list)

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]


def _parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions per stage (comments dropped, continuation lines joined); ARGs before FROM ignored."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    parsed = Dockerfile()
    for line in logical:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            parsed.stages.append([])
        if parsed.stages:
            parsed.stages[-1].append(Instruction(keyword.upper(), args.strip()))
    return parsed


def _build_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", path.read_text(), re.M))


# --- Kubernetes ---------------------------------------------------------------------------------------


_rendered: dict[str, tuple[str, list[dict[str, Any]]]] = {}


def _render(overlay: str) -> tuple[str, list[dict[str, Any]]]:
    if overlay not in _rendered:
        result = _run([_tool("kubectl"), "kustomize", str(OVERLAYS[overlay])])
        assert result.returncode == 0, f"kubectl kustomize {OVERLAYS[overlay]} failed:\n{result.stderr}"
        _rendered[overlay] = (result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d])
    return _rendered[overlay]


def _objects(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _render(overlay)[1] if d["kind"] == kind}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def _memory_bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity)
    assert match, quantity
    return float(match.group(1)) * units.get(match.group(2), 1)


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_manifests_render_and_pass_strict_schema_validation(overlay: str, tmp_path: Path) -> None:
    text, _docs = _render(overlay)
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(text)
    result = _run([_tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, str(rendered)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_manifests_contain_every_part_of_the_deployment(overlay: str) -> None:
    deployments = _objects(overlay, "Deployment")
    assert set(deployments) == {"frontdesk-worker", "frontdesk-desk", "frontdesk-nlu"}
    assert {"frontdesk-desk", "frontdesk-nlu"} <= set(_objects(overlay, "Service"))
    assert _objects(overlay, "Ingress"), "the desk and the webhooks need an Ingress"
    # base ships the Secret as a blank template; production must not apply it over the real one
    assert ("frontdesk-secrets" in _objects(overlay, "Secret")) is (overlay == "base")
    for obj in _objects(overlay, "Deployment").values():
        refs = {e.get("secretRef", {}).get("name") for c in _pod_spec(obj)["containers"] for e in c.get("envFrom", [])}
        assert "frontdesk-secrets" in refs or obj["metadata"]["name"] == "frontdesk-nlu"
    assert any(name.startswith("frontdesk-config") for name in _objects(overlay, "ConfigMap"))
    assert _objects(overlay, "Job")["frontdesk-migrate"]
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in _objects(overlay, "HorizontalPodAutoscaler").values()}
    assert hpa_targets == {"frontdesk-worker", "frontdesk-nlu"}
    assert _objects(overlay, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_prometheus_scrapes_the_port_that_serves_metrics(overlay: str) -> None:
    """With real accounts the HTTP port answers /metrics with 404 (FRONTDESK_PUBLIC_METRICS unset): the desk
    and the workers serve it on FRONTDESK_METRICS_PORT, and that is the port their pods are scraped on."""
    [config] = [c for n, c in _objects(overlay, "ConfigMap").items() if n.startswith("frontdesk-config")]
    env = config["data"]
    assert env.get("FRONTDESK_PUBLIC_METRICS", "") in ("", "false")
    for name in ("frontdesk-desk", "frontdesk-worker"):
        template = _objects(overlay, "Deployment")[name]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == env["FRONTDESK_METRICS_PORT"], name
        declared = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert int(env["FRONTDESK_METRICS_PORT"]) in declared, name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_no_pod_starts_without_a_real_secret_key(overlay: str) -> None:
    """A blank key would mean the public development key: the template ships none, the pods require it."""
    for secret in _objects(overlay, "Secret").values():
        assert "FRONTDESK_SECRET_KEY" not in (secret.get("stringData") or {}) | (secret.get("data") or {})
    for name in ("frontdesk-desk", "frontdesk-worker"):
        [container] = [c for c in _pod_spec(_objects(overlay, "Deployment")[name])["containers"]
                       if c["name"] in ("desk", "worker")]
        [ref] = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if e["name"] == "FRONTDESK_SECRET_KEY"]
        assert ref == {"name": "frontdesk-secrets", "key": "FRONTDESK_SECRET_KEY", "optional": False}


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_rasa_and_its_clients_require_the_nlu_token(overlay: str) -> None:
    """Rasa's API is behind FRONTDESK_NLU_AUTH_TOKEN: its pod and every client pod require it by name."""
    for secret in _objects(overlay, "Secret").values():
        assert "FRONTDESK_NLU_AUTH_TOKEN" not in (secret.get("stringData") or {}) | (secret.get("data") or {})
    deployments = _objects(overlay, "Deployment")
    for name in ("frontdesk-desk", "frontdesk-worker", "frontdesk-nlu"):
        container = _pod_spec(deployments[name])["containers"][0]
        [ref] = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
                 if e["name"] == "FRONTDESK_NLU_AUTH_TOKEN"]
        assert ref == {"name": "frontdesk-secrets", "key": "FRONTDESK_NLU_AUTH_TOKEN", "optional": False}, name
    rasa = _pod_spec(deployments["frontdesk-nlu"])["containers"][0]
    assert not rasa.get("envFrom"), "Rasa gets the token, not the app's other secrets"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):  # an httpGet probe cannot send the token
        assert rasa[probe]["exec"]["command"] == ["python", "/usr/local/bin/frontdesk-healthcheck"], probe


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_content_comes_from_a_configmap_every_content_user_mounts(overlay: str) -> None:
    """The brand's content is a ConfigMap built from content/ (not the image): the worker and the desk mount it
    where FRONTDESK_CONTENT_DIR points, whole (no subPath, which never sees updates), so it reloads in place."""
    from bot.content import CONTENT_FILES, OPTIONAL_CONTENT_FILES, load_content

    [config] = [c for n, c in _objects(overlay, "ConfigMap").items() if n.startswith("frontdesk-config")]
    content_dir = config["data"]["FRONTDESK_CONTENT_DIR"]
    assert float(config["data"]["FRONTDESK_CONTENT_RELOAD_S"]) > 0
    maps = _objects(overlay, "ConfigMap")
    assert "frontdesk-content" in maps, "no hash suffix: the ConfigMap is updated in place, pods reload it"
    shipped = {*CONTENT_FILES, *OPTIONAL_CONTENT_FILES, "taxonomy.yml"}
    assert set(maps["frontdesk-content"]["data"]) == shipped
    for name in shipped:
        assert maps["frontdesk-content"]["data"][name] == (PROJECT_ROOT / "content" / name).read_text()
    for name in ("frontdesk-desk", "frontdesk-worker"):
        spec = _pod_spec(_objects(overlay, "Deployment")[name])
        [volume] = [v["name"] for v in spec["volumes"] if v.get("configMap", {}).get("name") == "frontdesk-content"]
        [container] = [c for c in spec["containers"] if c["name"] in ("desk", "worker")]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == volume]
        assert mount["mountPath"] == content_dir and mount.get("readOnly") and "subPath" not in mount, name
    # What the pods read is valid content.
    assert load_content(PROJECT_ROOT / "content").faq


def test_compose_mounts_the_content_folder_into_the_worker_and_the_desk(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        (DOCKER / ".env.example").read_text()
        .replace("\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD=pw\n")
        .replace("\nFRONTDESK_SECRET_KEY=\n", "\nFRONTDESK_SECRET_KEY=" + "k" * 64 + "\n")
        .replace("\nFRONTDESK_NLU_AUTH_TOKEN=\n", "\nFRONTDESK_NLU_AUTH_TOKEN=" + "t" * 64 + "\n")
    )
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("worker", "desk"):
        content_dir = services[name]["environment"]["FRONTDESK_CONTENT_DIR"]
        [(source, read_only)] = [(s, ro) for s, t, ro in _volumes(services[name]) if t == content_dir]
        assert read_only, name
        assert Path(source).resolve() == (PROJECT_ROOT / "content").resolve(), name
    custom = env_file.read_text().replace("\nFRONTDESK_CONTENT_HOST_DIR=\n", f"\nFRONTDESK_CONTENT_HOST_DIR={tmp_path}\n")
    env_file.write_text(custom)
    services = yaml.safe_load(_compose_config(env_file).stdout)["services"]
    assert any(source == str(tmp_path) for source, _, _ in _volumes(services["worker"]))


def _volumes(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, in compose v1's short form or v2's long one."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found.append((source, target, "ro" in mode))
        else:
            found.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
    return found


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_container_is_sized_probed_and_unprivileged(overlay: str) -> None:
    workloads = {**_objects(overlay, "Deployment"), **_objects(overlay, "Job")}
    for name, obj in workloads.items():
        spec = _pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert _memory_bytes(limits["memory"]) >= _memory_bytes(requests["memory"]), where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        if obj["kind"] == "Deployment":
            main = spec["containers"][0]
            assert "readinessProbe" in main and "livenessProbe" in main, name


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_nlu_pods_have_room_for_rasa(overlay: str) -> None:
    """Rasa holds ~1.4 GB resident once its model is loaded: a smaller request gets it OOM-killed."""
    rasa = _pod_spec(_objects(overlay, "Deployment")["frontdesk-nlu"])["containers"][0]
    assert _memory_bytes(rasa["resources"]["requests"]["memory"]) >= 1.4e9
    assert rasa["startupProbe"]["failureThreshold"] * rasa["startupProbe"]["periodSeconds"] >= 120


def test_production_overlay_pins_images_and_names_its_host() -> None:
    for name, obj in _objects("production", "Deployment").items():
        for container in _pod_spec(obj)["containers"]:
            image = container["image"]
            assert ":" in image and not image.endswith((":dev", ":latest")), f"{name}: {image}"
    assert all(d["metadata"].get("namespace") == "frontdesk" for d in _render("production")[1] if d["kind"] != "Namespace")
    base_host = _objects("base", "Ingress")["frontdesk"]["spec"]["rules"][0]["host"]
    prod_host = _objects("production", "Ingress")["frontdesk"]["spec"]["rules"][0]["host"]
    assert prod_host != base_host


# --- commands the deployment runs exist in the CLI ------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def _frontdesk_commands() -> set[tuple[str, ...]]:
    """Every `frontdesk …` invocation in the manifests, the compose file and the app image's CMD."""
    found: set[tuple[str, ...]] = set()
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    for doc in docs:
        spec = doc.get("spec", {}) or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            if c.get("image", "").startswith("frontdesk") and not c["image"].startswith("frontdesk-nlu"):
                if "args" in c and "command" not in c:  # the image's ENTRYPOINT is `frontdesk`
                    found.add(tuple(a for a in c["args"] if not a.startswith("-"))[:2])
                found |= _commands_in_shell(" ".join(c.get("command", [])))
    for name, service in _compose()["services"].items():
        if service.get("build", {}).get("dockerfile", "").endswith("Dockerfile") and "command" in service:
            found.add(tuple(service["command"])[:2])
    cmd = [i for i in _parse_dockerfile(DOCKERFILES["app"]).final if i.keyword == "CMD"]
    if cmd:
        found.add(tuple(yaml.safe_load(cmd[-1].args))[:2])
    return found


def _commands_in_shell(text: str) -> set[tuple[str, ...]]:
    return {tuple(m.group(1).split()[:2]) for m in re.finditer(r"\bfrontdesk((?:\s+[a-z][a-z-]*){1,2})", text)}


def _registered(path: tuple[str, ...]) -> bool:
    from frontdesk.app.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, [*path[:-1], "--help"], prog_name="frontdesk", env={"COLUMNS": "200"})
    if listed.exit_code != 0:
        return False
    return re.search(rf"^\W*{re.escape(path[-1])}\b", listed.output, re.M) is not None


COMMANDS = sorted(_frontdesk_commands())


def test_the_deployment_runs_the_commands_this_test_expects() -> None:
    assert {("worker",), ("desk",), ("db", "upgrade"), ("db", "current")} <= {
        c if c[0] == "db" else c[:1] for c in COMMANDS
    }


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_commands_the_deployment_runs_exist(command: tuple[str, ...]) -> None:
    path = command if command[0] in ("db", "nlu", "agents") else command[:1]
    assert _registered(path), f"the deployment runs `frontdesk {' '.join(path)}`, which `frontdesk --help` does not list"


# --- docker compose --------------------------------------------------------------------------------


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRONTDESK_", "POSTGRES_"))}
    env["FRONTDESK_ENV_FILE"] = str(env_file)
    return _run(
        [_tool("docker-compose"), "--env-file", str(env_file), "-f", str(DOCKER / "docker-compose.yml"), "config"],
        env=env,
    )


def test_compose_file_is_valid_and_starts_in_order(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        (DOCKER / ".env.example").read_text()
        .replace("\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD=pw-for-test\n")
        .replace("\nFRONTDESK_SECRET_KEY=\n", "\nFRONTDESK_SECRET_KEY=" + "k" * 64 + "\n")
        .replace("\nFRONTDESK_NLU_AUTH_TOKEN=\n", "\nFRONTDESK_NLU_AUTH_TOKEN=" + "t" * 64 + "\n")
    )
    result = _compose_config(env_file)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"postgres", "migrate", "nlu", "worker", "desk"} <= set(services)
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["nlu"]["condition"] == "service_healthy"
    assert services["desk"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "nlu", "worker", "desk"):
        assert "test" in services[name]["healthcheck"], name
    worker_env = services["worker"]["environment"]
    assert worker_env["FRONTDESK_DATABASE_URL"] == "postgresql+asyncpg://frontdesk:pw-for-test@postgres:5432/frontdesk"
    assert worker_env["FRONTDESK_NLU_URL"] == "http://nlu:5005"
    # Rasa and its clients share one token, and Rasa gets no other setting.
    assert services["nlu"]["environment"] == {"FRONTDESK_NLU_AUTH_TOKEN": "t" * 64}
    assert services["desk"]["environment"]["FRONTDESK_NLU_AUTH_TOKEN"] == worker_env["FRONTDESK_NLU_AUTH_TOKEN"]


def test_compose_refuses_to_start_without_the_nlu_token(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        (DOCKER / ".env.example").read_text()
        .replace("\nPOSTGRES_PASSWORD=\n", "\nPOSTGRES_PASSWORD=pw-for-test\n")
        .replace("\nFRONTDESK_SECRET_KEY=\n", "\nFRONTDESK_SECRET_KEY=" + "k" * 64 + "\n")
    )
    result = _compose_config(env_file)
    assert result.returncode != 0 and "FRONTDESK_NLU_AUTH_TOKEN" in result.stderr


def test_compose_refuses_to_start_without_the_required_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text((DOCKER / ".env.example").read_text())
    result = _compose_config(env_file)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "FRONTDESK_SECRET_KEY" in result.stderr


# --- settings documentation --------------------------------------------------------------------------


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def test_env_example_documents_every_setting_with_secrets_blank() -> None:
    example = _env_example()
    missing = [f"FRONTDESK_{name.upper()}" for name in Settings.model_fields if f"FRONTDESK_{name.upper()}" not in example]
    assert not missing, f"add to deploy/docker/.env.example: {missing}"
    secrets = [
        f"FRONTDESK_{name.upper()}" for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    ]
    assert secrets, "expected SecretStr settings"
    assert all(example[s] == "" for s in secrets), {s: example[s] for s in secrets if example[s]}
    assert example["POSTGRES_PASSWORD"] == ""


def test_blank_values_from_env_example_leave_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading .env.example as-is must not configure empty credentials or a bogus path."""
    for key, value in _env_example().items():
        if key.startswith("FRONTDESK_"):
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.x_consumer_key is None and settings.telegram_token is None
    assert not settings.has_x_credentials
    assert settings.var_dir == Settings.model_fields["var_dir"].default


# --- Dockerfiles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfile_is_multi_stage_non_root_and_healthchecked(image: str) -> None:
    path = DOCKERFILES[image]
    dockerfile = _parse_dockerfile(path)
    assert len(dockerfile.stages) >= 2, "build tools stay in a build stage"
    final = dockerfile.final
    users = [i.args for i in final if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{path.name}: runs as {users}"
    assert any(i.keyword == "HEALTHCHECK" and "CMD" in i.args for i in final)
    final_runs = " ".join(i.args for i in final if i.keyword == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make "):
        assert tool not in final_runs, f"{path.name}: the final stage installs {tool.strip()}"
    base = final[0].args.split()[0]
    for name, value in _build_args(path).items():
        base = base.replace(f"${{{name}}}", value)
    if image == "app":
        assert base.startswith("python:3.11-slim"), base
    else:
        assert base.startswith(("python:3.10", "rasa/rasa:3.6.21")), base


def test_nlu_image_installs_the_pinned_rasa() -> None:
    text = DOCKERFILES["nlu"].read_text()
    assert "nlu/requirements-rasa.txt" in text and "rasa train nlu" in text and "--enable-api" in text
    requirements = PROJECT_ROOT / "nlu" / "requirements-rasa.txt"
    assert re.search(r"^rasa==3\.6\.21\b", requirements.read_text(), re.M)


@pytest.mark.parametrize("image", list(DOCKERFILES))
def test_dockerfile_passes_hadolint(image: str) -> None:
    result = _run([_tool("hadolint"), "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKERFILES[image])])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_state_and_secrets_out_of_images() -> None:
    ignored = {line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var", ".env", "shared"} <= ignored


async def test_container_healthcheck_script_follows_the_process_health() -> None:
    """The HEALTHCHECK script passes while a worker's /healthz answers and fails once it is gone."""
    from frontdesk.core import metrics

    script = DOCKER / "healthcheck.py"
    runner = await metrics.serve_metrics(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{metrics.bound_port(runner)}/healthz"
    env = {**os.environ, "FRONTDESK_HEALTHCHECK_URL": url}
    try:
        healthy = await _async_run([sys.executable, str(script)], env)
    finally:
        await runner.cleanup()
    unhealthy = await _async_run([sys.executable, str(script)], env)
    assert healthy[0] == 0, healthy[1]
    assert unhealthy[0] == 1 and "unhealthy" in unhealthy[1]


async def _async_run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


def test_shell_command_extraction() -> None:
    """The helper that finds `frontdesk …` inside `sh -c` strings (used above) finds what it should."""
    assert _commands_in_shell("until frontdesk db current; do sleep 5; done") == {("db", "current")}
    assert _commands_in_shell("echo 'waiting for the frontdesk-migrate Job'") == set()


@pytest.mark.parametrize(
    ("flags", "preset", "expected"),
    [
        ("fpu sse3 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl", "", "SkylakeX"),
        ("fpu sse3 avx avx2 fma avx512f avx512cd", "", "Haswell"),  # not every subset SkylakeX needs
        ("fpu sse3 avx", "", ""),
        ("fpu sse3 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl", "Zen", "Zen"),  # the operator's
    ],
)
def test_nlu_entrypoint_picks_openblas_kernels_and_runs_rasa_with_the_images_arguments(
    tmp_path: Path, flags: str, preset: str, expected: str
) -> None:
    """The image cannot know its host's CPU: its entrypoint chooses like nlu/blas.py does, then execs Rasa."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    # The entrypoint runs Rasa through the image's python (the token goes by environment, not argv):
    # a fake python prints what Rasa would get.  tests/test_nlu_auth.py runs the real one.
    fake_python = tmp_path / "bin" / "python"
    fake_python.parent.mkdir()
    fake_python.write_text('#!/bin/sh\nshift 2\necho "coretype=${OPENBLAS_CORETYPE:-} args=$*"\n')
    fake_python.chmod(0o755)
    env = {"PATH": f"{fake_python.parent}:/usr/bin:/bin", "FRONTDESK_CPUINFO": str(cpuinfo),
           "FRONTDESK_NLU_AUTH_TOKEN": "entrypoint-test-token"}
    if preset:
        env["OPENBLAS_CORETYPE"] = preset
    result = _run([str(DOCKER / "nlu-entrypoint.sh"), "--enable-api", "--port", "5005"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"coretype={expected} args=run --enable-api --port 5005"


def test_nlu_entrypoint_agrees_with_the_runtime_on_this_machine(tmp_path: Path) -> None:
    from nlu.blas import cpu_flags, openblas_coretype

    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "${OPENBLAS_CORETYPE:-}"\n')
    fake_python.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "FRONTDESK_NLU_AUTH_TOKEN": "entrypoint-test-token"}
    result = _run([str(DOCKER / "nlu-entrypoint.sh")], env=env)
    assert result.stdout.strip() == (openblas_coretype(cpu_flags()) or "")


def test_nlu_entrypoint_refuses_to_open_rasa_without_the_token(tmp_path: Path) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho started\n')
    fake_python.chmod(0o755)
    result = _run([str(DOCKER / "nlu-entrypoint.sh"), "--enable-api"], env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 1 and "started" not in result.stdout
    assert "FRONTDESK_NLU_AUTH_TOKEN" in result.stderr
