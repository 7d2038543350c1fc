"""Reading a content file as YAML nodes, which keep their line numbers, so every mistake can name
`<file>:<line>`: shared by the loaders of replies.yml, words.yml, tags.yml and listening.yml."""

from __future__ import annotations

from pathlib import Path

import yaml


def compose(path: Path, text: str, error: type[ValueError]) -> yaml.Node | None:
    """`yaml.compose` of `text` (None for an empty file); a YAML mistake raises `error` naming file and line."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
