"""The audit log and the outbox of messages: appended to, in the caller's transaction."""

from __future__ import annotations

from epay_tui.server.store.engine import Tx, inserting
from epay_tui.server.store.schema import audit, outbox

_APPEND_AUDIT = inserting(audit, "at", "actor", "action", "target", "detail")
_QUEUE_MESSAGE = inserting(outbox, "channel", "to_addr", "body", "sent_at")


def append_audit(tx: Tx, at: float, actor: str, action: str, target: str, detail: str) -> None:
    values = {"at": at, "actor": actor, "action": action, "target": target, "detail": detail}
    tx.execute(_APPEND_AUDIT, values)


def queue_message(tx: Tx, at: float, channel: str, to: str, body: str) -> None:
    tx.execute(_QUEUE_MESSAGE, {"sent_at": at, "channel": channel, "to_addr": to, "body": body})
