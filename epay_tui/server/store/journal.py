"""The audit log and the outbox of messages: appended to, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy import bindparam

from epay_tui.server.store.engine import Query, Tx
from epay_tui.server.store.schema import audit, outbox

_APPEND_AUDIT = Query(
    audit.insert().values(
        at=bindparam("at"),
        actor=bindparam("actor"),
        action=bindparam("action"),
        target=bindparam("target"),
        detail=bindparam("detail"),
    )
)
_QUEUE_MESSAGE = Query(
    outbox.insert().values(
        channel=bindparam("channel"),
        to_addr=bindparam("to"),
        body=bindparam("body"),
        sent_at=bindparam("at"),
    )
)


def append_audit(tx: Tx, at: float, actor: str, action: str, target: str, detail: str) -> None:
    values = {"at": at, "actor": actor, "action": action, "target": target, "detail": detail}
    tx.execute(_APPEND_AUDIT, values)


def queue_message(tx: Tx, at: float, channel: str, to: str, body: str) -> None:
    tx.execute(_QUEUE_MESSAGE, {"at": at, "channel": channel, "to": to, "body": body})
