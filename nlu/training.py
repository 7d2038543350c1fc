"""Training the NLU model, cached by the hash of everything that shapes it (``rasa train nlu``)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from frontdesk.core.settings import Settings
from nlu.rasa_process import (
    Progress,
    RasaRuntimeError,
    file_lock,
    no_progress,
    rasa_env,
    run_logged,
    stderr_progress,
)
from nlu.rasa_venv import RASA_VERSION, ensure_rasa_venv, rasa_executable, requirements_hash


class RasaTrainingError(RasaRuntimeError):
    """The project is incomplete or `rasa train nlu` failed: the message carries Rasa's last lines."""


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
    """Where the model of these inputs is cached: ``var/models/nlu-<hash>.tar.gz``."""
    return settings.nlu_models_dir / f"nlu-{inputs.model_hash()}.tar.gz"


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
    progress = progress or no_progress
    inputs = training_inputs(settings, project_dir, config=config)
    model = model_path_for(settings, inputs)
    if model.is_file() and not force:
        progress(f"nlu: model up to date, not retraining: {model}")
        return model
    with file_lock(settings.var_dir / "locks" / f"{model.stem}.lock"):
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
                run_logged(
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
