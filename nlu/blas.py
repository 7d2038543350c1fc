"""Which OpenBLAS kernel the Rasa process should use on this CPU.

numpy's bundled OpenBLAS picks its matrix kernels by CPU model at load time, and the one Rasa 3.6 pins
(numpy 1.23.5, OpenBLAS 0.3.20) does not know recent Xeons: on our machines it falls back to its
Prescott (SSE3) kernels and multiplies at ~27 GFLOP/s instead of ~90 on one core.  The sentence encoder
is almost all matrix products, so that alone made a parse half again as slow.  OpenBLAS honours
``OPENBLAS_CORETYPE``; we name the newest kernel family whose instructions the CPU reports, and leave
the choice alone when the operator has made one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

# Kernel families OpenBLAS 0.3.20 builds into numpy's wheel, newest first, with the flags they need.
_KERNELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("SkylakeX", frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})),
    ("Haswell", frozenset({"avx2", "fma"})),
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags of the first CPU listed (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def openblas_coretype(flags: frozenset[str]) -> str | None:
    """The newest OpenBLAS kernel family these CPU flags can run, or None to let OpenBLAS decide."""
    for name, needed in _KERNELS:
        if needed <= flags:
            return name
    return None


def blas_env(environ: Mapping[str, str], flags: frozenset[str] | None = None) -> dict[str, str]:
    """``OPENBLAS_CORETYPE`` to add to a Rasa process's environment ({} when set already or unknown)."""
    if environ.get("OPENBLAS_CORETYPE"):
        return {}
    coretype = openblas_coretype(cpu_flags() if flags is None else flags)
    return {"OPENBLAS_CORETYPE": coretype} if coretype else {}
