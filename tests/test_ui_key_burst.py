"""Keys that arrive in one burst (a card reader, a pasted "number<tab>password")."""

from textual import events
from textual.widgets import Input


async def test_tab_in_a_burst_moves_focus_before_the_next_characters(make_ui_app):
    app = make_ui_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        burst = [*"2024010001", "tab", *"152018Czgc", "tab", *"ABCD"]
        for key in burst:  # posted back to back, as a terminal read delivers them
            character = key if len(key) == 1 else ("\t" if key == "tab" else None)
            app.post_message(events.Key(key, character))
        await pilot.pause()
        screen = app.screen
        assert screen.query_one("#username", Input).value == "2024010001"
        assert screen.query_one("#password", Input).value == "152018Czgc"
        assert screen.query_one("#captcha", Input).value == "ABCD"
