"""Running Rasa's commands: their environment, their logged output, the lock between processes, the errors.

What the venv build (``nlu.rasa_venv``), training (``nlu.training``) and serving (``nlu.serving``) share:
each runs Rasa's tools as subprocesses of the app, never in-process (Rasa needs Python 3.10 and pins
libraries the app cannot share).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from frontdesk.core.settings import Settings
from nlu.blas import blas_env

Progress = Callable[[str], None]


class RasaRuntimeError(RuntimeError):
    """Rasa could not be installed, trained or started; the message says why and what to do."""


def stderr_progress(message: str) -> None:
    """The default progress sink: the user's terminal, never stdout (which may carry JSON)."""
    print(message, file=sys.stderr, flush=True)


def no_progress(_: str) -> None:
    """The progress sink of ``progress=None``: says nothing."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialises venv builds and trainings across processes (a test run beside `frontdesk run`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_logged(
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


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, indented for an error message (where tools put the cause)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {_ANSI.sub('', line)}" for line in text[-lines:])


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
