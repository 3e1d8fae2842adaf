from textual.widgets import Input

from tests.conftest import latest_captcha_answer


async def test_first_login_forces_change_then_menu(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press(*"2024010001", "tab", *"152018Czgc", "tab")
        await pilot.press(*latest_captcha_answer(ui_server), "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "ChangePasswordScreen"
        assert app.focused is app.screen.query_one("#new", Input)
        await pilot.press(*"Zhangwei2026x", "tab", *"Zhangwei2026x", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert type(app.screen).__name__ == "MenuScreen"
        assert app.user == ("2024010001", "张伟")
