"""The Textual app: settings, the API client, the session, language and navigation."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from epay_tui.api.clock import Clock, SystemClock
from epay_tui.api.rules import printable_only
from epay_tui.i18n import other

if TYPE_CHECKING:  # the client (httpx, pydantic) is imported after the first frame
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import Meta, Profile
    from epay_tui.config import Settings

log = logging.getLogger("epay_tui")
KIOSK_TICK_SECONDS = 0.25
CLOCK_SKEW_TOLERANCE = timedelta(seconds=5)
"""A gap between this machine's clock and the backend's up to this is latency, not skew."""
IDLE_COUNTDOWN_SECONDS = 20
KIOSK_RETURN_AFTER_PAYMENT = 30


@dataclass
class StudentSession:
    """Who is logged in. Built at login, dropped whole at logout."""

    username: str
    role: str
    profile: Profile | None = None
    next_group: list[str] = field(default_factory=list)
    """Item ids 全选 left for the next order (the other receipt type)."""
    continue_group: list[str] = field(default_factory=list)
    """``next_group`` once the first order is paid: 自助缴费 checks these next."""
    looked_for_open_orders: bool = False


class EpayApp(App[None]):
    """The client. Create it with :func:`make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "epay-tui"
    BINDINGS = [
        # Priority: focus moves in key order even when keys arrive in one burst (a card
        # reader or a paste of "number<tab>password"); otherwise the widget sees the tab
        # only after the next characters were already delivered to it.
        Binding("tab", "focus_next", show=False, priority=True),
        Binding("shift+tab", "focus_previous", show=False, priority=True),
        Binding("f1", "help", "help", id="help", priority=True),
        Binding("f2", "toggle_language", "language", id="language", priority=True),
        Binding("ctrl+q", "quit_app", "quit", id="quit", priority=True),
    ]

    language: reactive[str] = reactive("zh")
    sandbox: reactive[bool] = reactive(False)
    user: reactive[tuple[str, str] | None] = reactive(None)
    """``(username, name)`` of the logged-in student, shown in the header."""

    def __init__(self, settings: Settings, client: ApiClient | None, clock: Clock | None) -> None:
        self.ENABLE_COMMAND_PALETTE = not settings.kiosk  # a kiosk offers no way around it
        super().__init__()
        self.settings = settings
        self.clock = clock or SystemClock()
        self.api: ApiClient | None = client
        self._api_ready = asyncio.Event()
        self.session: StudentSession | None = None
        self._meta: Meta | None = None
        self.server_offset = timedelta(0)
        """How far the backend's clock is ahead of this machine's (0 within 5 s)."""
        self.embedded = None
        self.language = settings.lang
        self.animation_level = "none"
        self.last_activity = self.clock.now()
        self.kiosk_return_at: datetime | None = None
        """Kiosk: when to go back to a clean login after 支付成功."""

    @property
    def meta(self) -> Meta | None:
        """The backend's ``/meta`` as last fetched (school, payee, hours, its clock)."""
        return self._meta

    @meta.setter
    def meta(self, meta: Meta | None) -> None:
        self._meta = meta
        if meta is not None:
            skew = meta.server_time - self.clock.now()
            self.server_offset = skew if abs(skew) > CLOCK_SKEW_TOLERANCE else timedelta(0)

    def server_now(self) -> datetime:
        """The backend's time: this machine's clock, corrected when it is more than 5 s
        off (a kiosk set to the wrong time still counts an order down rightly)."""
        return self.clock.now() + self.server_offset

    # ----------------------------------------------------------------- start-up
    def on_mount(self) -> None:
        self.push_screen(self.login_screen())
        if self.settings.kiosk:
            self.set_interval(KIOSK_TICK_SECONDS, self.kiosk_tick)
        if self.api is not None:
            self._api_ready.set()
        elif self.settings.server:
            self.call_after_refresh(self._use_backend, self.settings.server)
        else:
            self.sandbox = True
            self.call_after_refresh(self._start_embedded)

    def _start_embedded(self) -> None:
        self.run_worker(self._embedded_backend, thread=True, exit_on_error=False, name="backend")

    def _embedded_backend(self) -> None:
        """Start the reference backend with the demo college (only when no server is set)."""
        from epay_tui.server.config import ServerConfig
        from epay_tui.server.runner import BackgroundServer

        self.embedded = BackgroundServer(ServerConfig(demo_data=True, port=0)).start()
        self.call_from_thread(self._use_backend, self.embedded.url)

    def _use_backend(self, url: str) -> None:
        from epay_tui.api.client import ApiClient

        self.api = ApiClient(url, timeout=self.settings.timeout)
        self._api_ready.set()

    def login_screen(self, **notice: object) -> Screen:
        """The way in: the student login, or the staff login at a helpdesk."""
        if self.settings.helpdesk:
            from epay_tui.screens.staff_login import StaffLoginScreen

            return StaffLoginScreen(**notice)
        from epay_tui.screens.login import LoginScreen

        return LoginScreen(**notice)

    async def api_client(self) -> ApiClient:
        """The API client, once the backend is known (at once unless embedded)."""
        await self._api_ready.wait()
        assert self.api is not None
        return self.api

    async def on_unmount(self) -> None:
        if self.api is not None:
            await self.api.aclose()
        if self.embedded is not None:
            self.embedded.stop()

    # ----------------------------------------------------------------- session
    def begin_session(self, username: str, role: str) -> None:
        self.session = StudentSession(username=username, role=role)

    def set_profile(self, profile: Profile) -> None:
        if self.session is not None:
            self.session.profile = profile
        self.user = (profile.username, profile.name)

    def show_fresh(self, screen: Screen) -> None:
        """Drop every screen above the base and show ``screen`` alone."""
        for _ in range(len(self.screen_stack) - 1):
            self.pop_screen()
        self.push_screen(screen)

    async def end_session(
        self, notice: str | None = None, severity: str = "ok", **values: object
    ) -> None:
        """Log out: tell the backend, forget the student, start again at login.

        ``notice`` (a catalog key with ``values``) is shown on the fresh login screen.
        """
        api = self.api
        if api is not None and api.token:
            try:
                await api.logout()
            except Exception:  # the session ends here whatever the backend says
                log.info("logout call failed", exc_info=True)
            api.token = None
        self.session = None
        self.user = None
        self.kiosk_return_at = None
        self.last_activity = self.clock.now()
        self.show_fresh(self.login_screen(notice=notice, severity=severity, values=values))

    # ----------------------------------------------------------------- keys
    async def on_event(self, event: events.Event) -> None:
        """Every key, before any binding takes it, counts as activity for the screen."""
        if isinstance(event, events.Paste) and not event.is_forwarded:
            # typed control keys never reach a field; pasted ones must not either
            event.text = printable_only(event.text, keep="\r\n")
        if isinstance(event, events.Key | events.MouseDown):
            self.last_activity = self.clock.now()
            activity = getattr(self.screen, "key_activity", None)
            if activity is not None and activity() and isinstance(event, events.Key):
                return  # the key answered that screen (还在使用吗？) and goes no further
        await super().on_event(event)

    def global_key_hints(self) -> list[tuple[str, str]]:
        return [("F1", "key.help"), ("F2", "key.language"), ("^Q", "key.quit")]

    def action_toggle_language(self) -> None:
        self.language = other(self.language)

    def watch_language(self, language: str) -> None:
        self.set_class(language == "en", "-en")  # English labels are wider
        self._retranslate_all()

    def watch_user(self) -> None:
        self._retranslate_all()

    def watch_sandbox(self) -> None:
        self._retranslate_all()

    def _retranslate_all(self) -> None:
        """Words on every screen of the stack follow the language (and the header its
        student): each widget or screen with ``retranslate()`` redraws itself."""
        if not self.is_running:
            return
        for screen in self.screen_stack:
            for node in (screen, *screen.query("*")):
                retranslate = getattr(node, "retranslate", None)
                if retranslate is not None and node.is_mounted:
                    retranslate()

    def action_help(self) -> None:
        from epay_tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        topic = getattr(self.screen, "HELP", None)
        if topic:
            self.push_screen(HelpScreen(topic))

    async def action_quit(self) -> None:
        """Textual's own quit path (its bindings, the palette) goes through the PIN too."""
        await self.action_quit_app()

    async def action_quit_app(self) -> None:
        """Quit; a kiosk asks for the staff PIN first."""
        from epay_tui.screens.kiosk import StaffPin

        if not self.settings.kiosk:
            self.exit()
        elif not isinstance(self.screen, StaffPin):
            self.push_screen(
                StaffPin(self.settings.staff_pin_hash), lambda ok: self.exit() if ok else None
            )

    # ----------------------------------------------------------------- kiosk
    def kiosk_tick(self) -> None:
        """Idle too long → a countdown, then logout; 支付成功 → back to login after 30 s."""
        from epay_tui.screens.kiosk import IdleCountdown

        now = self.clock.now()
        if self.kiosk_return_at is not None and now >= self.kiosk_return_at:
            self.run_worker(self.end_session(), exclusive=True, group="kiosk")
            return
        screen = self.screen
        if isinstance(screen, IdleCountdown):
            screen.tick()
            if screen.seconds_left() <= 0:
                self.run_worker(self.end_session("kiosk.logged_out"), exclusive=True, group="kiosk")
            return
        idle = (now - self.last_activity).total_seconds()
        if idle >= self.settings.idle_timeout and not self._pristine():
            deadline = now + timedelta(seconds=IDLE_COUNTDOWN_SECONDS)
            self.push_screen(IdleCountdown(deadline))

    def _pristine(self) -> bool:
        """A clean login that nobody has typed into: nothing to wipe."""
        from textual.widgets import Input

        from epay_tui.screens.login import LoginScreen

        screen = self.screen
        return (
            self.session is None
            and isinstance(screen, LoginScreen)
            and not any(field.value for field in screen.query(Input))
        )


def make_app(
    settings: Settings, client: ApiClient | None = None, clock: Clock | None = None
) -> EpayApp:
    """The one way to build the app, for the CLI and every test.

    ``client=None`` connects to ``settings.server``, or starts the embedded sandbox
    backend when no server is configured.
    """
    return EpayApp(settings, client, clock)
