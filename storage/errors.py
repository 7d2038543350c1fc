"""The store's typed errors.  Each message says what is wrong and, where there is one, the fix."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for every error the store raises on purpose."""


class NotFound(StoreError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!r} does not exist")
        self.what = what
        self.key = key


class InvalidTransition(StoreError):
    """The requested change does not apply to the ticket or conversation in its current state."""

    def __init__(self, action: str, current_state: str, *, holder: str | None = None) -> None:
        detail = f"cannot {action}: the ticket is {current_state}"
        if holder:
            detail += f" (held by {holder})"
        super().__init__(detail)
        self.action = action
        self.current_state = current_state
        self.holder = holder


class AlreadyClaimed(InvalidTransition):
    """Another agent won the claim."""

    def __init__(self, holder: str, holder_id: int | None) -> None:
        super().__init__("claim", "assigned", holder=holder)
        self.args = (f"already claimed by {holder}",)
        self.holder_id = holder_id


class IncidentResolved(InvalidTransition):
    """An incident already resolved takes no more links, updates or resolutions."""

    def __init__(self, action: str, incident_id: int) -> None:
        super().__init__(action, "resolved")
        self.args = (f"cannot {action}: incident #{incident_id} is already resolved; open a new one",)


class NotAllowed(StoreError):
    """The acting agent may not do this (e.g. reply on a ticket another agent holds)."""


class PublicReplyNotAllowed(NotAllowed):
    """X would refuse a public reply here: no post of the customer in the thread summons the brand."""

    def __init__(self, handle: str) -> None:
        who = f"@{handle}" if handle else "the customer"
        super().__init__(
            f"cannot reply in public: X lets the brand reply only under a post that @mentions it or quotes one "
            f"of its posts, and no post of {who} in this thread does. Nothing was sent; answer by DM once "
            f"{who} writes to the brand, or when they mention the brand"
        )


class InvalidText(StoreError, ValueError):
    """Text that cannot be stored faithfully (NUL bytes, lone surrogates) or is out of bounds."""


class SchemaOutOfDate(StoreError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {current or '(empty)'} but this Frontdesk needs {head}: "
            "run `frontdesk db upgrade` (with the same FRONTDESK_DATABASE_URL) and start again"
        )
        self.current = current
        self.head = head
