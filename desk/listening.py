"""What the desk shows of a listening item and where a ticket opened from it goes (shared by the API and
the Listening page).  The rules come from the content in use (`content/listening.yml`, reloaded with it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any

from bot.content import ListeningRules, load_listening
from bot.taxonomy import Taxonomy
from frontdesk.core.settings import Settings
from storage.actions.listening import TicketRoute, dm_refusal, public_reply_refusal
from storage.models import ListeningItem


def load_rules(settings: Settings) -> ListeningRules:
    """The rules in the content folder; none when the file is missing or broken (start-up names the error)."""
    try:
        return load_listening(settings.content_dir / "listening.yml")
    except ValueError:
        return ListeningRules()


def ticket_route(item: ListeningItem, taxonomy: Taxonomy | None) -> TicketRoute:
    """The intent's queue and priority when the NLU was sure, else the category's; `general` without a taxonomy.
    A negative post is never below normal priority (a complaint in public is seen by everyone)."""
    if taxonomy is None:
        return TicketRoute(queue="general", priority="normal", category=item.category or "other")
    route = taxonomy.intents.get(item.intent or "") or taxonomy.category_route(item.category or "other")
    priority = route.priority
    if item.sentiment.value == "negative" and priority == "low":
        priority = "normal"
    return TicketRoute(queue=route.queue, priority=priority, category=item.category or route.category)


@dataclass(frozen=True)
class ItemView:
    """One item as agents see it, with what they may do about it and why not."""

    item: ListeningItem
    public_refusal: str | None
    dm_refusal: str | None

    @property
    def url(self) -> str:
        handle = self.item.author_handle or "i"
        return f"https://x.com/{handle}/status/{self.item.platform_post_id}"

    def as_dict(self) -> dict[str, Any]:
        i = self.item
        posted = i.posted_at if i.posted_at.tzinfo else i.posted_at.replace(tzinfo=UTC)
        return {
            "id": i.id, "post_id": i.platform_post_id, "url": self.url, "rule": i.rule,
            "author_id": i.author_id, "author_handle": i.author_handle, "author_name": i.author_name,
            "text": i.text, "posted_at": posted, "category": i.category, "intent": i.intent,
            "confidence": i.confidence, "sentiment": i.sentiment.value, "status": i.status.value, "note": i.note,
            "ticket_id": i.ticket_id, "addressed_brand": i.addressed_brand,
            "public_reply_allowed": self.public_refusal is None, "public_reply_refusal": self.public_refusal,
            "dm_allowed": self.dm_refusal is None, "dm_refusal": self.dm_refusal,
        }


def view(item: ListeningItem) -> ItemView:
    return ItemView(item, public_reply_refusal(item), dm_refusal(item))
