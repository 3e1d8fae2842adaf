"""What makes a ``space`` on 自助缴费 cheap, checked without timing anything: the mark
changes one row's caches and one row's lines, and 合计 changes without a new layout.
(The figures are in the README, from ``benchmarks/ui.py``; no test asserts a time.)"""

from __future__ import annotations

import pytest
from textual.widgets.data_table import CellDoesNotExist

from epay_tui.widgets.tables import RowTable
from epay_tui.widgets.texts import Tr
from tests.conftest import NEW_ZHANG, ZHANG
from tests.payment_flows import SIZE, cursor_key, fees, log_in, open_fees


async def test_space_repaints_the_row_it_marks_and_keeps_the_other_rows(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, ui_server, *ZHANG, new_password=NEW_ZHANG)
        await open_fees(pilot)
        screen = fees(app)
        table = screen.query_one("#fees", RowTable)
        await pilot.pause()
        key = cursor_key(app)
        assert key in screen.items and key not in screen.checked
        row = table._get_row_region(table.cursor_row).y - table.scroll_offset.y
        lines = {y: table.render_line(y) for y in range(table.size.height)}
        assert "[ ]" in lines[row].text
        updates = table._update_count

        screen.action_toggle()  # what space does, looked at before the next frame

        assert key in screen.checked
        assert table._update_count == updates  # every other row's render caches hold
        assert not screen.query_one("#total", Tr)._layout_required  # 合计: a repaint only
        await pilot.pause()
        assert "[✓]" in table.render_line(row).text
        for y, strip in lines.items():
            if y != row:
                assert table.render_line(y) is strip, f"line {y} was rendered again"
        assert "合计" in screen.query_one("#total", Tr).content


async def test_a_cell_that_does_not_exist_is_refused(make_ui_app):
    app = make_ui_app()
    async with app.run_test(size=SIZE):
        table = RowTable()
        table.add_column("mark", key="mark")
        await app.screen.mount(table)
        table.add_row("[ ]", key="a")
        table.update_row_cell("a", "mark", "[✓]")
        assert str(table.get_cell("a", "mark")) == "[✓]"
        with pytest.raises(CellDoesNotExist):  # as DataTable.update_cell
            table.update_row_cell("b", "mark", "[✓]")
