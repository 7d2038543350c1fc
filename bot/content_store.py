"""The content a running process uses, and reloading it without a restart (docs/content.md).

`ContentStore` holds the current `Bundle` (content/ and the taxonomy, validated together).  A reload —
on SIGHUP (`frontdesk.app.supervisor` installs the handler) or when a file's modification time or size
changes (`watch`, every `FRONTDESK_CONTENT_RELOAD_S` seconds) — loads the whole folder again; a folder
that does not pass the checks is refused with a logged `file:line` error and the old content stays in
use.  Parts that use content subscribe and are handed each new bundle (the router worker, the desk).

A Kubernetes ConfigMap volume swaps its files at once (a symlink to a new directory); a stat through the
symlink sees the new file, so the same polling picks it up.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.content import (
    CONTENT_FILES,
    OPTIONAL_CONTENT_FILES,
    Content,
    ContentError,
    check_faq_intents,
    check_tag_intents,
    load_content,
)
from bot.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

log = logging.getLogger("frontdesk.content")


@dataclass(frozen=True)
class Bundle:
    content: Content
    taxonomy: Taxonomy


def load_bundle(content_dir: Path, taxonomy_path: Path) -> Bundle:
    """Every content file and the taxonomy, checked together (an FAQ entry's intent must be one the
    taxonomy knows); ContentError (`file:line: problem`) otherwise."""
    content = load_content(content_dir)
    try:
        taxonomy = load_taxonomy(taxonomy_path)
    except TaxonomyError as exc:
        raise ContentError(str(exc)) from None
    check_faq_intents(content, taxonomy.intents, taxonomy_path=taxonomy_path)
    check_tag_intents(content, taxonomy.intents)
    words = content.words
    for intent in (*words.negative_intents, *words.positive_intents):
        if intent not in taxonomy.intents:
            raise ContentError(
                f"{content.sources.get('words', 'words.yml')}: sentiment: intent {intent!r} is not in the taxonomy "
                f"({taxonomy_path}); use one of {', '.join(sorted(taxonomy.intents))}"
            )
    return Bundle(content=content, taxonomy=taxonomy)


Listener = Callable[[Bundle], None]
_Signature = tuple[tuple[str, int, int], ...]


class ContentStore:
    def __init__(self, content_dir: Path, taxonomy_path: Path, *, bundle: Bundle | None = None) -> None:
        self.content_dir = content_dir
        self.taxonomy_path = taxonomy_path
        self._signature = self._stat()
        self.current = bundle if bundle is not None else load_bundle(content_dir, taxonomy_path)
        self._listeners: list[Listener] = []
        self.reloads = 0
        self.refused = 0
        self.last_error = ""

    @property
    def files(self) -> list[Path]:
        return [self.content_dir / name for name in (*CONTENT_FILES, *OPTIONAL_CONTENT_FILES)] + [self.taxonomy_path]

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every new bundle (not with the current one)."""
        self._listeners.append(listener)

    def reload(self, why: str = "requested") -> bool:
        """Load the folder again; True if the new content is in use, False (old one kept) if refused."""
        self._signature = self._stat()
        try:
            bundle = load_bundle(self.content_dir, self.taxonomy_path)
        except ContentError as exc:
            self.refused += 1
            self.last_error = str(exc)
            log.error("content: the new content is refused (%s), the previous content stays in use: %s", why, exc)
            return False
        self.current = bundle
        self.reloads += 1
        self.last_error = ""
        for listener in self._listeners:
            listener(bundle)
        log.info("content reloaded (%s): %d FAQ answers, %d events, %d intents", why, len(bundle.content.faq),
                 len(bundle.content.events), len(bundle.taxonomy.intents))
        return True

    def reload_if_changed(self) -> bool | None:
        """Reload when a file changed since the last load; None when nothing changed."""
        if self._stat() == self._signature:
            return None
        return self.reload("a content file changed")

    async def watch(self, interval_s: float) -> None:
        """Poll the files' modification times every `interval_s` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.reload_if_changed()  # a few small YAML files: milliseconds, on the loop
            except Exception:  # noqa: BLE001 - a reload must never stop the process
                log.exception("content: checking for changes failed; trying again in %.0f s", interval_s)

    def _stat(self) -> _Signature:
        found = []
        for path in self.files:
            try:
                st = os.stat(path)  # follows symlinks: a ConfigMap's swap shows as a new file
                found.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                found.append((str(path), -1, -1))
        return tuple(found)
