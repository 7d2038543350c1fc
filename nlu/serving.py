"""Serving: ``rasa run --enable-api --auth-token`` in its own process group, ready once its model is loaded.

Everything here lives in the app's event loop (``async with running_nlu_server(settings) as url: ...``);
the token comes from ``nlu.auth``, the OpenBLAS kernel choice with the environment of ``nlu.rasa_process``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from frontdesk.core.settings import Settings
from nlu.auth import AUTH_TOKEN_ENV, nlu_auth_token
from nlu.rasa_process import Progress, RasaRuntimeError, log_tail, no_progress, rasa_env, stderr_progress
from nlu.rasa_venv import ensure_rasa_venv, venv_python
from nlu.training import train


class RasaServerError(RasaRuntimeError):
    """Rasa would not start, load its model in time, or keep running: the message has its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (tests and benches start their servers there)."""
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
    progress = progress or no_progress
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
        str(venv_python(venv)), "-c", _RASA_RUN_WITH_TOKEN_FROM_ENV, "run", "--enable-api", "--quiet",
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
                    f"log {server.log_path}:\n{log_tail(server.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await http.get(f"{server.url}/status", params={"token": server.auth_token})
                if response.status_code == 200 and response.json().get("model_file"):
                    return
            if time.monotonic() > deadline:
                raise RasaServerError(
                    f"Rasa on {server.url} did not load its model within {timeout_s:.0f}s "
                    f"(raise FRONTDESK_NLU_STARTUP_TIMEOUT_S on a slow machine); log {server.log_path}:\n"
                    f"{log_tail(server.log_path)}"
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
    progress = progress or no_progress
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
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        delay = min(30.0, 2.0 ** (quick_crashes - 1))
        progress(f"nlu: {problem}; restarting in {delay:.0f}s (log: {log_path})")
        await asyncio.sleep(delay)
