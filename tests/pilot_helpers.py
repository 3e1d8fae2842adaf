"""Helpers shared by the Pilot tests: wait for a condition, read the screen's words,
read a captcha's answer."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, OptionList, Static

from epay_tui.server.runner import BackgroundServer
from epay_tui.widgets.checklist import PasswordChecklist
from epay_tui.widgets.chrome import AppHeader, KeyBar

WIDTH = 80  # ui.md: no screen needs more than 80x24


async def until(
    pilot: Pilot, condition: Callable[[], bool], what: str = "", timeout: float = 10.0
) -> None:
    """Let the app work until ``condition()`` holds, or fail saying what.

    Between two looks it waits for the app's next step (:func:`next_step`), not a
    fixed interval. A screen still composing (a query that finds nothing yet) or not yet
    the one the condition reads (an attribute it lacks) counts as "not yet"; the last
    such error is named if the wait fails.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if condition():
                return
        except (NoMatches, AttributeError) as exc:
            last = exc
        left = deadline - time.monotonic()
        if left < 0:
            app = pilot.app
            raise AssertionError(
                f"never reached: {what}; screen {type(app.screen).__name__}, "
                f"focus {getattr(app.focused, 'id', None)!r}"
                + (f"; last: {type(last).__name__}: {last}" if last else "")
            )
        await next_step(pilot, limit=min(left, STEP_LIMIT))


STEP_LIMIT = 0.25
"""The longest :func:`next_step` waits for a worker: a long poll that answers without
ending, or a timer, moves the screen too."""


async def next_step(pilot: Pilot, limit: float) -> None:
    """Wait until one of the app's running workers ends (an answer came back), at most
    ``limit`` seconds, then until the app has handled what that set off (Pilot's own
    wait for idle). With no worker running, only the latter."""
    running = [worker for worker in pilot.app.workers if worker.is_running]
    if running:
        # Never cancelled from here (that would cancel the worker): each wait ends with
        # its worker, and how the worker ended is the app's business.
        ends = [asyncio.ensure_future(worker.wait()) for worker in running]
        for end in ends:
            end.add_done_callback(lambda end: end.cancelled() or end.exception())
        await asyncio.wait(ends, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    await pilot.pause()


async def fill(pilot: Pilot, **values: str) -> None:
    """Put ``values`` into the active screen's fields by id and leave the focus in the
    last: the words a student would type, for a test whose subject is not the typing
    (the keyboard itself is what the key-order, burst and fuzz tests drive)."""
    for field_id, value in values.items():
        field = pilot.app.screen.query_one(f"#{field_id}", Input)
        field.value = value
        field.focus()
    await pilot.pause()


async def clear_field(pilot: Pilot) -> None:
    """Empty the focused field from the keyboard."""
    field = pilot.app.focused
    assert isinstance(field, Input)
    await pilot.press("end", *["backspace"] * len(field.value))


def answer_for(server: BackgroundServer, captcha_id: str | None) -> str:
    """The answer of captcha ``captcha_id``, read in-process from the backend's store."""
    with server.backend.store.read() as conn:
        row = conn.execute(
            "SELECT answer FROM captchas WHERE captcha_id=?", (captcha_id,)
        ).fetchone()
    assert row is not None, f"no captcha {captcha_id!r}"
    return row["answer"]


async def settle_workers(pilot: Pilot, rounds: int = 5) -> None:
    """Let every worker finish (workers may start more workers), then repaint; fails,
    naming them, if workers are still running after ``rounds`` rounds."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            return
    running = [f"{w.group}:{w.name}" for w in pilot.app.workers if w.is_running]
    raise AssertionError(f"workers still running after {rounds} rounds: {running}")


async def still(pilot: Pilot) -> None:
    """The last step before a shot: settled, and no blinking cursor to catch mid-blink."""
    await settle_workers(pilot)
    for screen in pilot.app.screen_stack:
        for field in screen.query(Input):
            field.cursor_blink = False
    await pilot.pause()


def snapshot(snap_compare, app, run_before, size, settle=still) -> bool:
    """``snap_compare`` after ``run_before`` and ``settle``; the screen must show no code
    the backend sends (``PHONE_INVALID``, ``in_order``, ``not_on_statement`` ...) as it is."""

    async def run(pilot: Pilot) -> None:
        await run_before(pilot)
        await settle(pilot)
        assert codes_on_screen(pilot.app) == [], "a code on screen instead of words"
        await pilot.pause()

    return snap_compare(app, terminal_size=size, run_before=run)


# ---------------------------------------------------------------------------- reading
CODE_LIKE = re.compile(r"\b(?:[A-Z][A-Z0-9]*_[A-Z0-9_]+|[a-z]+(?:_[a-z]+)+)\b")
"""What a code looks like: UPPER_SNAKE (error codes, profile problems, policy reasons) or
lower_snake (states, kinds, audit actions)."""


def codes_on_screen(app: Any) -> list[str]:
    return CODE_LIKE.findall(screen_text(app))


def plain(renderable: object, width: int = WIDTH) -> str:
    """A renderable (str, Text, Content, or any Rich renderable) as plain text."""
    if isinstance(renderable, str):
        return renderable
    text = getattr(renderable, "plain", None)
    if isinstance(text, str):
        return text
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(renderable, end="")
    return captured.get()


def text_of(widget: Widget) -> str:
    """The words a widget shows (an empty field shows its placeholder)."""
    if isinstance(widget, Button):
        return plain(widget.label)
    if isinstance(widget, Input):
        return widget.value or plain(widget.placeholder)
    if isinstance(widget, OptionList):
        return "\n".join(
            plain(widget.get_option_at_index(i).prompt) for i in range(widget.option_count)
        )
    if isinstance(widget, DataTable):
        return "\n".join(
            " | ".join(plain(cell) for cell in widget.get_row_at(i))
            for i in range(widget.row_count)
        )
    if isinstance(widget, Static | AppHeader | PasswordChecklist | KeyBar):
        return plain(widget.render())
    return ""


def screen_text(app: Any) -> str:
    """Every word on the active screen, one visible widget per line."""
    widgets = app.screen.walk_children(with_self=False)
    return "\n".join(filter(None, (text_of(w) for w in widgets if w.display)))


def shown(app: Any, selector: str) -> str:
    """The words of one Tr/Static on the active screen."""
    return plain(app.screen.query_one(selector, Static).render())


def title(app: Any) -> str:
    return shown(app, ".screen-title")


def message(app: Any) -> str:
    return shown(app, "#message")
