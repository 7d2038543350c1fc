"""How fast one core of this machine is right now, as the Rasa venv's numpy sees it.

A parse is mostly the sentence encoder's float32 matrix products and the reading of its weights from
memory, so the same model's parse latency moves with the machine: on a shared cloud machine one core's
rate swung between 59 and 91 GFLOP/s within an hour (nlu/DATA.md, "Round 9").  ``frontdesk nlu eval``
and ``bench/nlu.py`` print this next to their latency so that two latency figures can be compared.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

from frontdesk.core.settings import Settings
from nlu.rasa_process import rasa_env
from nlu.rasa_venv import RasaVenvError, ensure_rasa_venv

# A 1536x384 weight times a 34-token tweet (the encoder's feed-forward shape) on one BLAS thread, and a
# 64 MB read (more than the caches hold), in the Rasa venv with its OpenBLAS settings.
_PROBE = r"""
import json, time
import numpy as np
from threadpoolctl import threadpool_limits
rng = np.random.default_rng(0)
weight, tokens = rng.random((1536, 384), np.float32), rng.random((34, 384), np.float32)
big = np.ones(16 * 1024 * 1024, np.float32)
with threadpool_limits(1, "blas"):
    for _ in range(100):
        weight @ tokens.T
    products = []
    for _ in range(1000):
        started = time.perf_counter(); weight @ tokens.T; products.append(time.perf_counter() - started)
reads = []
for _ in range(20):
    started = time.perf_counter(); big.sum(); reads.append(time.perf_counter() - started)
products.sort(); reads.sort()
gflops = 2 * 1536 * 384 * 34 / products[500] / 1e9
print(json.dumps({"gflops": gflops, "read_gbs": big.nbytes / reads[10] / 1e9}))
"""


@dataclass(frozen=True)
class MachineSpeed:
    """One core's float32 matrix-product rate (GFLOP/s) and memory read rate (GB/s); ``None`` when
    not measured, with the reason."""

    gflops: float | None
    read_gbs: float | None
    unmeasured_because: str = ""

    def as_dict(self) -> dict[str, object]:
        if self.gflops is None:
            return {"measured": False, "reason": self.unmeasured_because}
        return {"measured": True, "one_core_gflops": round(self.gflops, 1),
                "memory_read_gb_per_s": round(self.read_gbs or 0.0, 2)}  # fmt: skip

    def describe(self) -> str:
        if self.gflops is None:
            return f"speed not measured: {self.unmeasured_because}"
        return (
            f"one core {self.gflops:.0f} GFLOP/s (float32 matrix products of the encoder's shape), "
            f"memory {self.read_gbs:.1f} GB/s"
        )


def is_local(url: str) -> bool:
    """Whether the NLU server at ``url`` runs on this machine (so that this machine's speed is its speed)."""
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def machine_speed_for(url: str, settings: Settings) -> MachineSpeed:
    """This machine's speed when the NLU server at ``url`` runs here; otherwise why it is not given."""
    if not is_local(url):
        return MachineSpeed(None, None, f"the server at {url} is not on this machine")
    return measure_machine_speed(settings)


def measure_machine_speed(settings: Settings, timeout_s: float = 120) -> MachineSpeed:
    """Measure for about two seconds in the Rasa venv; never raises (a failed probe is reported)."""
    try:
        venv = ensure_rasa_venv(settings, progress=None)
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _PROBE],
            capture_output=True,
            text=True,
            env=rasa_env(settings.nlu_project_dir, settings),
            timeout=timeout_s,
            check=False,
        )
    except (RasaVenvError, OSError, subprocess.TimeoutExpired) as exc:
        return MachineSpeed(None, None, f"{type(exc).__name__}: {exc}")
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return MachineSpeed(None, None, f"the probe failed: {last}")
    speed = json.loads(out.stdout.strip().splitlines()[-1])
    return MachineSpeed(float(speed["gflops"]), float(speed["read_gbs"]))
