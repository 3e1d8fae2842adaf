"""What every screen shares: header, key bar, message line, and safe API calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, OptionList
from textual.worker import Worker

from epay_tui.api import errors
from epay_tui.i18n import tr
from epay_tui.i18n.errors import describe
from epay_tui.screens.dialog import Choice
from epay_tui.widgets.chrome import AppHeader, KeyBar, bar_key
from epay_tui.widgets.texts import Tr

if TYPE_CHECKING:
    from datetime import datetime

    from epay_tui.api.client import ApiClient
    from epay_tui.api.clock import Clock
    from epay_tui.api.models import Meta, Profile
    from epay_tui.config import Settings
    from epay_tui.flow.session import Session

log = logging.getLogger("epay_tui.screens")
T = TypeVar("T")
RETRY_DELAYS = (1, 2, 4, 8, 15)
"""Seconds between automatic fetches while the backend cannot be reached (then every 15)."""
BUSY_RETRYING = "app.busy_retrying"

# Keys several screens share. The key bar draws every shown binding with an id, its word
# the catalog's ``key.<id>`` (widgets/chrome.py).
BACK = bar_key("escape", "back", "back", "Esc")
NEXT_FIELD = bar_key("tab", "app.focus_next", "next_field", "Tab")
"""Drawn in the bar; the app's own tab binding (priority, checked first) moves the focus."""


def arrows(word: str) -> list[Binding]:
    """``up``/``down``, drawn once as ``↑↓`` with ``key.<word>``: the focused list moves
    its own cursor; these move the screen's list when something else has the focus."""
    return [
        bar_key("up", "cursor(-1)", word, "↑↓"),
        bar_key("down", "cursor(1)", word, "↑↓"),
    ]


def enter_key(word: str, action: str = "submit") -> Binding:
    """``enter`` for ``action``, drawn as ``Enter`` with the catalog's ``key.<word>``. A
    focused field or button takes ``enter`` first; this is the key when nothing else does."""
    return bar_key("enter", action, word, "Enter")


class EpayHost(Protocol):
    """What a screen may ask of the app: settings, the session, the backend's clock and
    client, and navigation by screen name. (The app implements it; screens never import
    the app.)"""

    settings: Settings
    clock: Clock
    session: Session | None
    meta: Meta | None
    sandbox: bool

    async def api_client(self) -> ApiClient: ...
    def server_now(self) -> datetime: ...
    def start_session(self, session: Session) -> None: ...
    def set_profile(self, profile: Profile) -> None: ...
    async def end_session(
        self, notice: str | None = None, severity: str = "ok", **values: object
    ) -> None: ...
    def order_paid(self) -> None: ...
    def go(self, name: str, callback: Any = None, **arguments: Any) -> None: ...
    def go_instead(self, name: str, **arguments: Any) -> None: ...
    def start_over(self, name: str, **arguments: Any) -> None: ...


@runtime_checkable
class WatchesKeys(Protocol):
    """A screen the app tells of every key before bindings or fields take it."""

    def key_activity(self) -> bool:
        """True when the key was for this screen alone (it goes no further)."""
        ...


class EpayScreen(Screen[Any]):
    """A screen of the app. Subclasses give ``TITLE_KEY``, ``HELP``, ``BINDINGS`` (the
    key bar draws them) and ``compose_body``; the message line (``#message``) shows
    errors in words."""

    TITLE_KEY = ""
    HELP = ""
    _retry_now: asyncio.Event | None = None

    @property
    def epay(self) -> EpayHost:
        return self.app  # type: ignore[return-value]

    def t(self, key: str, **values: Any) -> str:
        return tr(self.app.language, key, **values)

    def compose(self) -> ComposeResult:
        yield AppHeader()
        if self.TITLE_KEY:
            yield Tr(self.TITLE_KEY, classes="screen-title")
        yield from self.compose_body()
        yield Tr(id="message")
        yield KeyBar()

    def compose_body(self) -> Iterable[Widget]:
        return ()


    def _list(self) -> OptionList | DataTable[Any]:
        rows = self.query("OptionList, DataTable").first()
        rows.focus()
        return rows  # type: ignore[return-value]

    def action_cursor(self, step: int) -> None:
        """Move the screen's list (``arrows``)."""
        rows = self._list()
        (rows.action_cursor_down if step > 0 else rows.action_cursor_up)()

    def action_open_row(self) -> None:
        """Open what the screen's list highlights, as ``enter`` on the list does."""
        rows = self._list()
        rows.action_select() if isinstance(rows, OptionList) else rows.action_select_cursor()

    @property
    def message(self) -> Tr:
        return self.query_one("#message", Tr)

    def say(self, key: str, *, severity: str | None = None, **values: Any) -> None:
        self.message.show(key, severity=severity, **values)

    def show_error(self, exc: errors.ApiError) -> None:
        key, values = describe(exc)
        self.say(key, severity="error", **values)

    def offer_resume(self, order_no: str) -> None:
        """Ask whether to go on with an unfinished order, then open it on 扫码支付."""

        def answered(answer: str | None) -> None:
            if answer == "resume":
                self.call_api(
                    lambda api: api.get_order(order_no),
                    lambda order: self.epay.go("pay", order=order),
                    group="resume",
                )

        question = Choice(
            "fees.resume_question",
            [("resume", "fees.resume"), ("cancel", "fees.cancel")],
            order_no=order_no,
        )
        self.app.push_screen(question, answered)

    # ----------------------------------------------------------------- the failure policy
    def load(
        self,
        fetch: Callable[[ApiClient], Awaitable[T]],
        show: Callable[[T], Any],
        *,
        group: str = "load",
    ) -> Worker[None]:
        """Fetch what the screen shows and ``show`` it, by the one policy for reads.

        The backend unreachable (or answering garbage) → 网络繁忙, and the same fetch again
        by itself after 1, 2, 4, 8, then every 15 s, and at once on the next key; the
        message goes at the first good answer. Everything else as :meth:`call_api`.
        """

        async def job() -> None:
            api = await self.epay.api_client()
            attempt = 0
            while True:
                try:
                    result = await fetch(api)
                    break
                except (errors.TransportError, errors.InternalError) as exc:
                    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                    attempt += 1
                    log.info("%s: backend unreachable (%s), again in %s s", group, exc.code, delay)
                    self.say(BUSY_RETRYING, severity="error", seconds=delay)
                    await self._retry_wait(delay)
                except Exception as exc:
                    await self._call_failed(exc, None, group)
                    return
            if attempt and self.message.key == BUSY_RETRYING:
                self.message.clear()
            await self._call_done(show, result, group)

        return self.run_worker(job(), group=group, exclusive=True, exit_on_error=False)

    def call_api(
        self,
        action: Callable[[ApiClient], Awaitable[T]],
        done: Callable[[T], Any],
        *,
        failed: Callable[[errors.ApiError], bool] | None = None,
        group: str = "api",
    ) -> Worker[None]:
        """Run an action the user started in a worker; ``done(result)`` on success.

        It is never repeated by itself (the key tries again, safe through its idempotency
        key). An ``ApiError`` goes to ``failed`` first (return True when handled), else
        it is shown on the message line in words; the backend ending the session goes
        back to login saying why; anything unforeseen, in ``done`` too, is logged and
        shown as 系统繁忙. Nothing reaches the screen as a traceback.
        """

        async def job() -> None:
            api = await self.epay.api_client()
            try:
                result = await action(api)
            except Exception as exc:
                await self._call_failed(exc, failed, group)
                return
            await self._call_done(done, result, group)

        return self.run_worker(job(), group=group, exclusive=True, exit_on_error=False)

    async def _call_failed(
        self,
        exc: Exception,
        failed: Callable[[errors.ApiError], bool] | None,
        group: str,
    ) -> None:
        """A call that did not succeed, in words (see :meth:`call_api`)."""
        if not isinstance(exc, errors.ApiError):
            log.error("unexpected failure in %s", group, exc_info=exc)
            exc = errors.InternalError()
        else:
            log.info("%s answered %s", group, exc.code)
        if self.epay.session is not None and isinstance(
            exc, errors.Unauthenticated | errors.AccountLocked
        ):  # the backend ended this session: start again at login, saying why
            key, values = describe(exc)
            await self.epay.end_session(key, "error", **values)
            return
        if failed is None or not failed(exc):
            self.show_error(exc)

    async def _call_done(self, then: Callable[[T], Any], result: T, group: str) -> None:
        """Run a success callback; a failure inside it is 系统繁忙, never a silent stop."""
        try:
            followed = then(result)
            if isinstance(followed, Awaitable):  # ``then`` may be a coroutine function
                await followed
        except Exception as exc:
            log.error("unexpected failure after %s", group, exc_info=exc)
            self.show_error(errors.InternalError())

    async def _retry_wait(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if a key is pressed meanwhile."""
        if self._retry_now is None:
            self._retry_now = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), timeout=delay)

    def key_activity(self) -> bool:
        """The app calls this with every key, before bindings or fields take it: a load
        waiting to try again tries now. True would keep the key from going further (a
        dialog that the key answered); the key still reaches its field here."""
        if self._retry_now is not None:
            self._retry_now.set()
            self._retry_now = None
        return False
