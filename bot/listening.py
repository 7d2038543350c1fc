"""What a post found by listening is about: the NLU's intent, the taxonomy's category, and its sentiment.

The category comes from the taxonomy exactly as the router reads it (`Taxonomy.category(intent)`; below the
confidence threshold it is the taxonomy's fallback, as an unsure message is for the router); the sentiment
from `content/words.yml` `sentiment` (`Words.sentiment`: the negative/positive intents, anger, the word lists).
When the NLU is down the post is still kept: no intent, the fallback category, sentiment from the words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.content_store import Bundle
from nlu.client import NLUClient, NLUError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Classification:
    category: str
    intent: str | None
    confidence: float | None
    sentiment: str


class ListeningClassifier:
    """`await classify(text)`; `bundle()` is the content in use (it follows reloads)."""

    def __init__(self, nlu: NLUClient | None, bundle: Callable[[], Bundle], *, confidence_threshold: float) -> None:
        self.nlu = nlu
        self.bundle = bundle
        self.confidence_threshold = confidence_threshold

    async def classify(self, text: str) -> Classification:
        current = self.bundle()
        intent: str | None = None
        confidence: float | None = None
        if self.nlu is not None:
            try:
                result = await self.nlu.parse(text)
                intent, confidence = result.intent, result.confidence
            except NLUError as exc:
                log.warning("listening: the NLU could not classify a post (%s); kept without an intent", exc)
        sure = intent is not None and confidence is not None and confidence >= self.confidence_threshold
        category = current.taxonomy.category(intent if sure else None)
        return Classification(
            category=category, intent=intent, confidence=confidence,
            sentiment=current.content.words.sentiment(text, intent if sure else None),
        )
