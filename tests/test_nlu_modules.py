"""nlu/'s modules keep to one job each (docs/nlu.md, "Modules"): venv, training and serving apart.

A private helper (``_name``) is its module's business: code elsewhere that reaches for one breaks when
the module changes.  And the four Rasa modules import one way, so the venv never depends on serving.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every place that may import our code; nlu/project runs in Rasa's venv and imports only its addons.
SEARCHED = ("frontdesk", "storage", "nlu", "bot", "desk", "sandbox", "bench", "tests", "deploy")
RASA_CHAIN = ("nlu.rasa_process", "nlu.rasa_venv", "nlu.training", "nlu.serving")


def _python_files() -> list[Path]:
    files = []
    for top in SEARCHED:
        files += [p for p in (ROOT / top).rglob("*.py") if "project" not in p.relative_to(ROOT).parts[:2]]
    return files


def _private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """``from nlu.x import _y`` and ``nlu.x._y`` in a file that is not nlu/x.py itself."""
    own = ".".join(path.relative_to(root).with_suffix("").parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("nlu."):
            if node.module != own:
                found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            dotted = ast.unparse(node.value)
            if dotted.startswith("nlu.") and dotted != own:
                found.append(f"{dotted}.{node.attr}")
    return [f"{path.relative_to(root)}:{name}" for name in found]


def test_no_code_uses_a_private_name_of_an_nlu_module() -> None:
    found = [use for path in _python_files() for use in _private_uses(path)]
    assert not found, "private names used outside their module (make them public or move the code):\n" + (
        "\n".join(found)
    )


def test_the_check_itself_sees_a_private_import(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    offender = tmp_path / "bench" / "probe.py"
    offender.write_text(
        "from nlu.serving import _port_is_free\nimport nlu.training\nnlu.training._files_under\n"
    )
    (tmp_path / "nlu").mkdir()
    own = tmp_path / "nlu" / "serving.py"  # a module may use its own private names
    own.write_text("import nlu.serving\nnlu.serving._port_is_free\n")
    assert _private_uses(offender, tmp_path) == [
        "bench/probe.py:nlu.serving._port_is_free",
        "bench/probe.py:nlu.training._files_under",
    ]
    assert _private_uses(own, tmp_path) == []


def test_the_rasa_modules_import_one_way() -> None:
    for rank, module in enumerate(RASA_CHAIN):
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        imported = {
            node.module
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module in RASA_CHAIN
        }
        later = imported & set(RASA_CHAIN[rank:])
        assert not later, f"{module} imports {sorted(later)}: only modules before it in {RASA_CHAIN}"


def test_no_nlu_module_shadows_the_standard_library_venv() -> None:
    # `python -c` puts the working directory first on sys.path: run from nlu/, an nlu/venv.py would be
    # imported instead of the stdlib's, and the Python 3.10 probe and `python -m venv` would break.
    out = subprocess.run(
        [sys.executable, "-c", "import venv, ensurepip; print(venv.__file__)"],
        cwd=ROOT / "nlu",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert not Path(out.stdout.strip()).resolve().is_relative_to(ROOT / "nlu")
