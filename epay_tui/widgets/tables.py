"""Row tables of the helpdesk pages: columns from the catalog, refills that keep the cursor."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.widgets import DataTable

from epay_tui.i18n import tr


def staff_table(columns: Iterable[tuple[str, int]], lang: str, table_id: str) -> DataTable:
    table: DataTable = DataTable(id=table_id, cursor_type="row", cell_padding=1)
    for key, width in columns:
        table.add_column(tr(lang, f"staff.col.{key}"), key=key, width=width)
    return table


def relabel(table: DataTable, columns: Iterable[tuple[str, int]], lang: str) -> None:
    for key, _ in columns:
        table.columns[key].label = Text(tr(lang, f"staff.col.{key}"))


def refill_keeping_cursor(table: DataTable, fill: Callable[[], None]) -> None:
    """Refill ``table`` and put the cursor back on the row it was on (by key)."""
    key = None
    if table.row_count:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    table.clear()
    fill()
    if key is not None and key in table.rows:
        table.move_cursor(row=table.get_row_index(key))


def cursor_key(table: DataTable) -> str | None:
    """The key of the row under the cursor (None in an empty table)."""
    if table.row_count == 0:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
