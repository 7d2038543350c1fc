"""Every state change of the store, one function each (in the manner of Zulip's zerver/actions)."""

from storage.actions.inbound import InboundMessage, Recorded, mark_handled, record_inbound, record_nlu_result
from storage.actions.tickets import (
    add_note,
    agent_reply,
    bot_reply,
    claim,
    correct_intent,
    escalate,
    hand_back,
    reassign,
    resolve,
    send_queue_notice,
    update_bot_state,
)

__all__ = [
    "InboundMessage",
    "Recorded",
    "add_note",
    "agent_reply",
    "bot_reply",
    "claim",
    "correct_intent",
    "escalate",
    "hand_back",
    "mark_handled",
    "reassign",
    "record_inbound",
    "record_nlu_result",
    "resolve",
    "send_queue_notice",
    "update_bot_state",
]
