"""The taxonomy: every NLU intent mapped to one of six categories, a ticket queue and a default priority.

`content/taxonomy.yml` (setting `taxonomy_path`) is the single place where the brand decides what an
intent means for routing; the router (`bot/router.py`) reads it through `RouterConfig.taxonomy`::

    intents:
      order_problem: {category: support, queue: support, priority: normal}
      ask_human:     {category: human,   queue: general, priority: high}
    fallback: {category: other, queue: general, priority: normal}   # optional; this is the default

Unknown intents (a model trained on older data, Rasa's `nlu_fallback`), no NLU at all and messages
the bot could not understand route by `fallback`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from frontdesk.core.settings import PROJECT_ROOT
from frontdesk.core.vocabulary import CATEGORIES, PRIORITIES, QUEUES

DEFAULT_TAXONOMY_PATH = PROJECT_ROOT / "content" / "taxonomy.yml"


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
    fallback: IntentRoute = FALLBACK_ROUTE

    def route(self, intent: str | None) -> IntentRoute:
        if intent is None or intent not in self.intents:
            return self.fallback
        return self.intents[intent]

    def category(self, intent: str | None) -> str:
        return self.route(intent).category

    def category_route(self, category: str) -> IntentRoute:
        """Where a ticket of `category` goes when the message at hand is not itself of that category.

        (The customer says "that didn't help" after an FAQ answer, or completes a sales lead.)  The queue
        most of the category's intents use, at normal priority; the fallback for a category without intents.
        """
        queues = [r.queue for r in self.intents.values() if r.category == category]
        if not queues:
            return self.fallback
        queue = max(sorted(set(queues)), key=queues.count)
        return IntentRoute(intent="", category=category, queue=queue, priority="normal")

    def intents_in(self, category: str) -> list[str]:
        return sorted(name for name, r in self.intents.items() if r.category == category)


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    path = path or DEFAULT_TAXONOMY_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(
            f"{path}: not found; the taxonomy maps every intent to a category, a queue and a priority: "
            "set FRONTDESK_TAXONOMY_PATH to it (default: taxonomy.yml in FRONTDESK_CONTENT_DIR)"
        ) from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), dict):
        raise TaxonomyError(f"{path}: expected a mapping with an 'intents:' mapping at the top")
    routes: dict[str, IntentRoute] = {}
    for intent, spec in raw["intents"].items():
        routes[intent] = _parse_route(path, str(intent), spec)
    if raw.get("fallback") is None:
        return Taxonomy(intents=routes)
    return Taxonomy(intents=routes, fallback=_parse_route(path, FALLBACK_ROUTE.intent, raw["fallback"]))


def _parse_route(path: Path, intent: str, spec: object) -> IntentRoute:
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{path}: intent {intent!r}: expected {{category, queue, priority}}")
    for key, allowed in (("category", CATEGORIES), ("queue", QUEUES), ("priority", PRIORITIES)):
        if spec.get(key) not in allowed:
            raise TaxonomyError(
                f"{path}: intent {intent!r}: {key} is {spec.get(key)!r}; use one of {', '.join(allowed)}"
            )
    return IntentRoute(intent=intent, category=spec["category"], queue=spec["queue"], priority=spec["priority"])
