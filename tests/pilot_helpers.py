"""Helpers shared by the Pilot tests: wait for a condition, read a captcha's answer."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import Input

from epay_tui.server.runner import BackgroundServer


async def until(
    pilot: Pilot, condition: Callable[[], bool], what: str = "", timeout: float = 10.0
) -> None:
    """Yield to the app 0.05 s at a time until ``condition()`` holds, or fail saying what.

    A screen still composing (a query that finds nothing yet) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except NoMatches:
            pass
        if time.monotonic() > deadline:
            app = pilot.app
            raise AssertionError(
                f"never reached: {what}; screen {type(app.screen).__name__}, "
                f"focus {getattr(app.focused, 'id', None)!r}"
            )
        await pilot.pause(0.05)


def answer_for(server: BackgroundServer, captcha_id: str | None) -> str:
    """The answer of captcha ``captcha_id``, read in-process from the backend's store."""
    with server.backend.store.read() as conn:
        row = conn.execute(
            "SELECT answer FROM captchas WHERE captcha_id=?", (captcha_id,)
        ).fetchone()
    assert row is not None, f"no captcha {captcha_id!r}"
    return row["answer"]


async def settle_workers(pilot: Pilot) -> None:
    """Let every worker finish (workers may start more workers), then repaint."""
    for _ in range(5):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            break


async def still(pilot: Pilot) -> None:
    """The last step before a shot: settled, and no blinking cursor to catch mid-blink."""
    await settle_workers(pilot)
    for screen in pilot.app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False
    await pilot.pause()
