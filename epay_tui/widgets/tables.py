"""Row tables of the helpdesk pages: columns from the catalog, refills that keep the cursor."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, CellType, ColumnKey, RowKey

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


class RowTable(DataTable):
    """A DataTable whose :meth:`update_row_cell` repaints one row, not the table.

    ``DataTable.update_cell`` bumps the table's update count, which every render cache
    is keyed by: the next frame renders every visible row and cell afresh and repaints
    the whole widget (on 自助缴费 that was most of a ``space``). Here only the caches of
    the changed row are dropped and only its lines are refreshed.
    """

    def update_row_cell(self, row_key: str, column_key: str, value: CellType) -> None:
        """Put ``value`` in a cell, as ``update_cell(..., update_width=False)`` would.

        The column's width is not measured again: ``value`` must fit it (the caller
        swaps like for like, e.g. ``[ ]`` for ``[✓]``).
        """
        row, column = RowKey(row_key), ColumnKey(column_key)
        if row not in self._row_locations or column not in self._column_locations:
            raise CellDoesNotExist(f"No cell at row {row_key!r}, column {column_key!r}.")
        self._data[row][column] = value
        index = self._row_locations.get(row)
        region = self._get_row_region(index)
        lines = range(region.y, region.bottom)
        self._row_renderable_cache.discard((self._update_count, index))
        for cache, stale in (
            (self._cell_render_cache, lambda key: key[0] == row),
            (self._row_render_cache, lambda key: key[0] == row),
            (self._line_cache, lambda key: key[0] in lines),
        ):
            for key in [key for key in cache.keys() if stale(key)]:  # noqa: SIM118 (LRUCache)
                cache.discard(key)
        self.refresh_row(index)
