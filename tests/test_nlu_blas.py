"""The OpenBLAS kernel the Rasa process runs with (nlu/blas.py), chosen from the CPU's flags.

numpy's OpenBLAS in the Rasa venv falls back to its oldest kernels on CPUs it does not recognise; the
Rasa's environment (`rasa_env`, nlu/rasa_process.py) names the right family.  Checked against the
real venv: the BLAS library Rasa loads reports the kernel family we chose.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from frontdesk.core.settings import Settings
from nlu.blas import blas_env, cpu_flags, openblas_coretype
from nlu.rasa_process import rasa_env

_BLAS_ARCHITECTURES = (
    "import json, numpy\n"
    "from threadpoolctl import threadpool_info\n"
    "print(json.dumps([i.get('architecture') for i in threadpool_info() if i['user_api'] == 'blas']))\n"
)
AVX512 = frozenset({"sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def test_the_newest_kernel_the_cpu_can_run_is_chosen() -> None:
    assert openblas_coretype(AVX512) == "SkylakeX"
    assert openblas_coretype(frozenset({"sse3", "avx", "avx2", "fma"})) == "Haswell"
    # Without every AVX-512 subset the SkylakeX kernels need, they would crash: fall back.
    assert openblas_coretype(AVX512 - {"avx512bw"}) == "Haswell"
    assert openblas_coretype(frozenset({"sse3", "avx"})) is None


def test_an_operators_choice_is_left_alone() -> None:
    assert blas_env({"OPENBLAS_CORETYPE": "Zen"}, AVX512) == {}
    assert blas_env({}, AVX512) == {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert blas_env({}, frozenset({"sse3"})) == {}


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse3 avx2 fma\n\nprocessor\t: 1\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "sse3", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.rasa
def test_rasa_loads_blas_with_the_chosen_kernel(rasa_venv: Path, tmp_path: Path) -> None:
    chosen = openblas_coretype(cpu_flags())
    env = rasa_env(tmp_path, Settings(var_dir=tmp_path / "var"))
    assert env.get("OPENBLAS_CORETYPE") == chosen
    out = subprocess.run(
        [str(rasa_venv / "bin" / "python"), "-c", _BLAS_ARCHITECTURES],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    architectures = json.loads(out.stdout.strip().splitlines()[-1])
    assert architectures, "numpy in the Rasa venv loaded no BLAS library"
    if chosen is not None:
        assert {a.lower() for a in architectures} == {chosen.lower()}
