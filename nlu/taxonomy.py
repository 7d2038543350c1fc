"""The taxonomy: every NLU intent mapped to one of six categories, a ticket queue and a default priority.

`nlu/taxonomy.yml` is the single place where the brand decides what an intent means for routing::

    intents:
      order_problem: {category: support, queue: support, priority: normal}
      ask_human:     {category: human,   queue: general, priority: high}

Unknown intents (a model trained on older data, Rasa's `nlu_fallback`) route as `other`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from frontdesk.core.vocabulary import CATEGORIES, PRIORITIES, QUEUES

DEFAULT_TAXONOMY_PATH = Path(__file__).resolve().parent / "taxonomy.yml"


class TaxonomyError(ValueError):
    """The taxonomy file is malformed; the message names the file, the intent and the fix."""


@dataclass(frozen=True)
class IntentRoute:
    intent: str
    category: str
    queue: str
    priority: str


FALLBACK_ROUTE = IntentRoute(intent="nlu_fallback", category="other", queue="general", priority="normal")


@dataclass(frozen=True)
class Taxonomy:
    intents: dict[str, IntentRoute]

    def route(self, intent: str | None) -> IntentRoute:
        if intent is None:
            return FALLBACK_ROUTE
        return self.intents.get(intent, IntentRoute(intent, "other", "general", "normal"))

    def category(self, intent: str | None) -> str:
        return self.route(intent).category

    def intents_in(self, category: str) -> list[str]:
        return sorted(name for name, r in self.intents.items() if r.category == category)


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    path = path or DEFAULT_TAXONOMY_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"{path}: not found; the taxonomy maps every intent to a category") from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
        raise TaxonomyError(f"{path}: expected a mapping with an 'intents:' mapping at the top")
    routes: dict[str, IntentRoute] = {}
    for intent, spec in raw["intents"].items():
        routes[intent] = _parse_route(path, str(intent), spec)
    return Taxonomy(intents=routes)


def _parse_route(path: Path, intent: str, spec: object) -> IntentRoute:
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{path}: intent {intent!r}: expected {{category, queue, priority}}")
    for key, allowed in (("category", CATEGORIES), ("queue", QUEUES), ("priority", PRIORITIES)):
        if spec.get(key) not in allowed:
            raise TaxonomyError(
                f"{path}: intent {intent!r}: {key} is {spec.get(key)!r}; use one of {', '.join(allowed)}"
            )
    return IntentRoute(intent=intent, category=spec["category"], queue=spec["queue"], priority=spec["priority"])
