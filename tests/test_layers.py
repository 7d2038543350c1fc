"""Imports run one way (docs/architecture.md): a module imports only its own layer and the layers below.

    core      frontdesk.core: vocabulary, settings, logging, metrics      imports nothing of ours
    base      storage, nlu (the store; the NLU service and its client)     core
    parts     bot (channels, router), desk, sandbox                        core, base (+ the peers below)
    app       frontdesk.app and every part's `cli` / `*_cli` module        anything

Between parts: the desk may read the bot's routing data (bot.taxonomy, bot.content); nothing imports the
desk; the sandbox (a model of X and Telegram) imports no other part.  Every import counts, also those
inside functions: a deferred import still runs back up the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("frontdesk", "storage", "nlu", "bot", "desk", "sandbox")
RANK = {"core": 0, "base": 1, "parts": 2, "app": 3}
PEERS_ALLOWED = {("desk", "bot.taxonomy"), ("desk", "bot.content")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "frontdesk":
        return "core" if parts[1:2] == ["core"] else "app"
    if parts[-1] == "cli" or parts[-1].endswith("_cli"):
        return "app"  # a part's sub-commands are the shell's, kept beside the part they drive
    return {"storage": "base", "nlu": "base"}.get(parts[0], "parts")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "project" in path.relative_to(ROOT).parts[:2]:  # nlu/project: Rasa's side, another venv
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def _allowed(importer: str, imported: str) -> bool:
    own, other = layer_of(importer), layer_of(imported)
    if RANK[other] < RANK[own]:
        return True
    if RANK[other] > RANK[own]:
        return False
    if own != "parts":
        return True
    mine, theirs = importer.split(".")[0], imported.split(".")[0]
    if mine == theirs:
        return True
    return any(mine == peer and (imported == target or imported.startswith(target + "."))
               for peer, target in PEERS_ALLOWED)


def _violations() -> list[str]:
    modules = _modules()
    found = []
    for name, path in sorted(modules.items()):
        for line, imported in _imports(path):
            if imported not in modules and imported.rsplit(".", 1)[0] in modules:
                continue  # `from pkg.mod import name`: the module itself was checked
            if not _allowed(name, imported):
                found.append(f"{path.relative_to(ROOT)}:{line}: {name} ({layer_of(name)}) imports "
                             f"{imported} ({layer_of(imported)})")
    return sorted(set(found))


def test_no_import_runs_back_up_the_layers() -> None:
    violations = _violations()
    assert not violations, "imports that run back up (see docs/architecture.md):\n" + "\n".join(violations)


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("storage.models", "frontdesk.core.vocabulary", True),
        ("frontdesk.core.metrics", "storage.models", False),
        ("storage.db", "bot.router", False),
        ("nlu.client", "bot.taxonomy", False),
        ("bot.router", "desk.app", False),
        ("desk.app", "bot.taxonomy", True),
        ("sandbox.x.api", "bot.channels.x.client", False),
        ("nlu.cli", "bot.taxonomy", True),
        ("desk.customers_cli", "desk.cli", True),
        ("desk.customers", "desk.cli", False),
        ("frontdesk.app.supervisor", "desk.app", True),
    ],
)
def test_the_check_itself_tells_a_back_up_import(importer: str, imported: str, allowed: bool) -> None:
    assert _allowed(importer, imported) is allowed
