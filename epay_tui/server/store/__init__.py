"""The only place that speaks SQL: the schema, its migrations, and transactions."""

from epay_tui.server.store.engine import Store
from epay_tui.server.store.migrations import SchemaTooOld

__all__ = ["SchemaTooOld", "Store"]
