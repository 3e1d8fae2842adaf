"""People and what they owe, as seeding writes them (the demo college, benchmarks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import insert

from epay_tui.server.store.engine import Tx
from epay_tui.server.store.schema import fee_items, users


def add_user(
    tx: Tx, username: str, name: str, role: str, password_hash: str, **details: str | None
) -> None:
    """A user; ``details`` are further columns of ``users`` (``id_card_no``, ``phone``,
    ``department``, ...), the others left at their defaults. Built per call: its columns
    vary."""
    tx.execute(
        insert(users).values(
            username=username, name=name, role=role, password_hash=password_hash, **details
        )
    )


def add_fee_items(tx: Tx, items: Sequence[Mapping[str, object]]) -> None:
    """Fee items, each a mapping of the columns of ``fee_items``. Built per call: many
    rows at once (``executemany``), which a :class:`Query` does not run."""
    if items:
        tx.execute(insert(fee_items), items)
