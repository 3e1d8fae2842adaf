from tests.test_ui_accounts import *  # noqa
async def test_dbg(make_ui_app, ui_server):
    app = make_ui_app()
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.press("f1")
        print("screen", app.screen, app.focused)
        await pilot.press("f2")
        print("lang after f2 on help", app.language)
        app.action_toggle_language()
        await pilot.pause()
        print("lang", app.language, screen_text(app)[:80])
