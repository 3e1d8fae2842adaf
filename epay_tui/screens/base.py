"""What every screen shares: header, key bar, message line, and safe API calls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.worker import Worker

from epay_tui.api import errors
from epay_tui.i18n import tr
from epay_tui.i18n.errors import describe
from epay_tui.widgets.chrome import AppHeader, KeyBar
from epay_tui.widgets.texts import Tr

if TYPE_CHECKING:
    from epay_tui.api.client import ApiClient
    from epay_tui.app import EpayApp

log = logging.getLogger("epay_tui.screens")
T = TypeVar("T")


class EpayScreen(Screen[Any]):
    """A screen of the app. Subclasses give ``TITLE_KEY``, ``HELP``, ``KEY_HINTS`` and
    ``compose_body``; the message line (``#message``) shows errors in words."""

    TITLE_KEY = ""
    HELP = ""
    KEY_HINTS: tuple[tuple[str, str], ...] = ()

    @property
    def epay(self) -> EpayApp:
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

    @property
    def message(self) -> Tr:
        return self.query_one("#message", Tr)

    def say(self, key: str, *, severity: str | None = None, **values: Any) -> None:
        self.message.show(key, severity=severity, **values)

    def show_error(self, exc: errors.ApiError) -> None:
        key, values = describe(exc)
        self.say(key, severity="error", **values)

    def call_api(
        self,
        action: Callable[[ApiClient], Awaitable[T]],
        done: Callable[[T], Any],
        *,
        failed: Callable[[errors.ApiError], bool] | None = None,
        group: str = "api",
    ) -> Worker[None]:
        """Run ``action`` in a worker; ``done(result)`` on success.

        An ``ApiError`` goes to ``failed`` first (return True when handled), else it is
        shown on the message line in words; anything unexpected is logged and goes the
        same way as an ``InternalError``. Nothing reaches the screen as a traceback.
        """

        async def job() -> None:
            api = await self.epay.api_client()
            try:
                result = await action(api)
            except errors.ApiError as exc:
                log.info("%s answered %s", group, exc.code)
                if self.epay.session is not None and isinstance(
                    exc, errors.Unauthenticated | errors.AccountLocked
                ):  # the backend ended this session: start again at login, saying why
                    key, values = describe(exc)
                    await self.epay.end_session(key, "error", **values)
                    return
                if failed is None or not failed(exc):
                    self.show_error(exc)
                return
            except Exception:
                log.exception("unexpected failure in %s", group)
                internal = errors.InternalError()
                if failed is None or not failed(internal):
                    self.show_error(internal)
                return
            followed = done(result)
            if isinstance(followed, Awaitable):  # ``done`` may be a coroutine function
                await followed

        return self.run_worker(job(), group=group, exclusive=True, exit_on_error=False)
