"""The audit log and the outbox of messages: appended to, in the caller's transaction."""

from __future__ import annotations

from epay_tui.server.store.engine import Tx
from epay_tui.server.store.schema import audit, outbox


def append_audit(tx: Tx, at: float, actor: str, action: str, target: str, detail: str) -> None:
    tx.execute(
        audit.insert().values(at=at, actor=actor, action=action, target=target, detail=detail)
    )


def queue_message(tx: Tx, at: float, channel: str, to: str, body: str) -> None:
    tx.execute(outbox.insert().values(channel=channel, to_addr=to, body=body, sent_at=at))
