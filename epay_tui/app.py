"""The Textual app: settings, the API client, the session, language and navigation."""

from __future__ import annotations

import asyncio
import importlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from epay_tui.api.clock import Clock, SystemClock
from epay_tui.api.rules import printable_only
from epay_tui.flow.session import ServerClock, Session
from epay_tui.gc_policy import CHECK_SECONDS, QuietCollector
from epay_tui.i18n import other
from epay_tui.screens.base import EpayScreen, WatchesKeys
from epay_tui.widgets.chrome import bar_key
from epay_tui.widgets.texts import Retranslatable

if TYPE_CHECKING:  # the client (httpx, pydantic) is imported after the first frame
    from epay_tui.api.client import ApiClient
    from epay_tui.api.models import Meta, Profile
    from epay_tui.config import Settings

log = logging.getLogger("epay_tui")
KIOSK_TICK_SECONDS = 0.25
IDLE_COUNTDOWN_SECONDS = 20
KIOSK_RETURN_AFTER_PAYMENT = 30

SCREENS_BY_NAME = {
    "login": "login:LoginScreen",
    "staff_login": "staff_login:StaffLoginScreen",
    "change_password": "change_password:ChangePasswordScreen",
    "reset_password": "reset_password:ResetPasswordScreen",
    "menu": "menu:MenuScreen",
    "fees": "fees:FeesScreen",
    "orders": "orders:OrdersScreen",
    "profile": "profile:ProfileScreen",
    "confirm_order": "confirm_order:ConfirmOrderScreen",
    "pay": "pay:PayScreen",
    "receipt": "receipt:ReceiptScreen",
    "help": "help:HelpScreen",
    "helpdesk": "helpdesk_home:HelpdeskHome",
    "student": "student_page:StudentPage",
    "reconcile": "reconcile:ReconcileScreen",
    "audit": "audit:AuditScreen",
    "counter_payment": "counter_payment:CounterPaymentScreen",
    "refund_request": "refund_request:RefundRequestScreen",
    "refund_approval": "refund_approval:RefundApprovalScreen",
    "cashier_report": "cashier_report:CashierReportScreen",
    "arrears": "arrears:ArrearsScreen",
    "discrepancies": "discrepancies:DiscrepanciesScreen",
    "idle_countdown": "kiosk:IdleCountdown",
    "staff_pin": "kiosk:StaffPin",
}
"""Every screen by name, in ``epay_tui.screens``: screens never import one another; they
ask the app for the next one by name, and a screen's module is loaded when first shown."""


def _where(name: str) -> tuple[str, str]:
    """``(module, class)`` of the screen called ``name``."""
    module, _, cls = SCREENS_BY_NAME[name].partition(":")
    return f"epay_tui.screens.{module}", cls


def screen_class(name: str) -> type[Screen]:
    """The class of the screen called ``name`` (its module loaded now)."""
    module, cls = _where(name)
    return getattr(importlib.import_module(module), cls)


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
        bar_key("f1", "help", "help", "F1", priority=True),
        bar_key("f2", "toggle_language", "language", "F2", priority=True),
        bar_key("ctrl+q", "quit_app", "quit", "^Q", priority=True),
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
        self.session: Session | None = None
        self.server_clock = ServerClock(self.clock)
        self.embedded = None
        self.language = settings.lang
        self.animation_level = "none"
        self.last_activity = self.clock.now()
        self.kiosk_ticks = 0
        """How many times the kiosk has looked at the clock (tests wait on it)."""
        self.kiosk_return_at: datetime | None = None
        """Kiosk: when to go back to a clean login after 支付成功."""
        self.gc_policy = QuietCollector()
        """Garbage collection at quiet moments, not between a key and its frame."""

    @property
    def meta(self) -> Meta | None:
        """The backend's ``/meta`` as last fetched (school, payee, hours, its clock)."""
        return self.server_clock.meta

    @meta.setter
    def meta(self, meta: Meta) -> None:
        self.server_clock.saw(meta)

    @property
    def server_offset(self) -> timedelta:
        return self.server_clock.offset

    def server_now(self) -> datetime:
        """The backend's time (see :class:`ServerClock`)."""
        return self.server_clock.now()

    # ----------------------------------------------------------------- start-up
    def on_mount(self) -> None:
        self.push_screen(self.login_screen())
        self.gc_policy.install()
        self.set_interval(CHECK_SECONDS, self.gc_policy.tick, name="quiet-gc")
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
        self.call_from_thread(self.gc_policy.freeze)  # the backend lives as long as we do

    def _use_backend(self, url: str) -> None:
        from epay_tui.api.client import ApiClient

        self.api = ApiClient(url, timeout=self.settings.timeout)
        self._api_ready.set()

    # ----------------------------------------------------------------- navigation
    def build(self, name: str, **arguments: Any) -> Screen:
        """The screen called ``name`` in :data:`SCREENS_BY_NAME`, made with ``arguments``."""
        return screen_class(name)(**arguments)

    def showing(self, name: str) -> bool:
        """Whether the active screen is the one called ``name``."""
        kind = type(self.screen)
        return (kind.__module__, kind.__name__) == _where(name)

    def go(self, name: str, callback: Any = None, **arguments: Any) -> None:
        """Show screen ``name`` over this one; ``callback`` gets what it is dismissed with."""
        self.push_screen(self.build(name, **arguments), callback)

    def go_instead(self, name: str, **arguments: Any) -> None:
        """Show screen ``name`` in place of this one."""
        self.switch_screen(self.build(name, **arguments))

    def start_over(self, name: str, **arguments: Any) -> None:
        """Drop every screen above the base and show screen ``name`` alone."""
        self.show_fresh(self.build(name, **arguments))

    def login_screen(self, **notice: object) -> Screen:
        """The way in: the student login, or the staff login at a helpdesk."""
        return self.build("staff_login" if self.settings.helpdesk else "login", **notice)

    async def api_client(self) -> ApiClient:
        """The API client, once the backend is known (at once unless embedded)."""
        await self._api_ready.wait()
        assert self.api is not None
        return self.api

    async def on_unmount(self) -> None:
        self.gc_policy.uninstall()
        if self.api is not None:
            await self.api.aclose()
        if self.embedded is not None:  # quitting never waits on the embedded backend
            self.embedded.stop_soon()

    # ----------------------------------------------------------------- session
    def start_session(self, session: Session) -> None:
        """Logged in: the session the screens work in, its name in the header."""
        self.session = session
        if session.profile is not None:
            self.set_profile(session.profile)

    def set_profile(self, profile: Profile) -> None:
        if self.session is not None:
            self.session.profile = profile
        self.user = (profile.username, profile.name)

    def order_paid(self) -> None:
        """An order was paid on 扫码支付: the group 全选 left is checked next on 自助缴费,
        and a kiosk goes back to a clean login 30 s later."""
        if self.session is not None:
            self.session.order_paid()
        if self.settings.kiosk:
            self.kiosk_return_at = self.clock.now() + timedelta(seconds=KIOSK_RETURN_AFTER_PAYMENT)

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
            self.gc_policy.input()
            screen = self.screen
            answered = isinstance(screen, WatchesKeys) and screen.key_activity()
            if answered and isinstance(event, events.Key):
                return  # the key answered that screen (还在使用吗？) and goes no further
        await super().on_event(event)

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
                if isinstance(node, Retranslatable) and node.is_mounted:
                    node.retranslate()

    def action_help(self) -> None:
        if self.showing("help"):
            return
        screen = self.screen
        if isinstance(screen, EpayScreen) and screen.HELP:
            self.go("help", topic=screen.HELP)

    async def action_quit(self) -> None:
        """Textual's own quit path (its bindings, the palette) goes through the PIN too."""
        await self.action_quit_app()

    async def action_quit_app(self) -> None:
        """Quit; a kiosk asks for the staff PIN first."""
        if not self.settings.kiosk:
            self.exit()
        elif not self.showing("staff_pin"):
            self.go(
                "staff_pin",
                lambda ok: self.exit() if ok else None,
                pin_hash=self.settings.staff_pin_hash,
            )

    # ----------------------------------------------------------------- kiosk
    def kiosk_tick(self) -> None:
        """Idle too long → a countdown, then logout; 支付成功 → back to login after 30 s."""
        self.kiosk_ticks += 1
        now = self.clock.now()
        if self.kiosk_return_at is not None and now >= self.kiosk_return_at:
            self.run_worker(self.end_session(), exclusive=True, group="kiosk")
            return
        screen = self.screen
        if self.showing("idle_countdown"):
            screen.tick()
            if screen.seconds_left() <= 0:
                self.run_worker(self.end_session("kiosk.logged_out"), exclusive=True, group="kiosk")
            return
        idle = (now - self.last_activity).total_seconds()
        if idle >= self.settings.idle_timeout and not self._pristine():
            deadline = now + timedelta(seconds=IDLE_COUNTDOWN_SECONDS)
            self.go("idle_countdown", deadline=deadline)

    def _pristine(self) -> bool:
        """A clean login that nobody has typed into: nothing to wipe."""
        from textual.widgets import Input

        return (
            self.session is None
            and self.showing("login")
            and not any(field.value for field in self.screen.query(Input))
        )


def make_app(
    settings: Settings, client: ApiClient | None = None, clock: Clock | None = None
) -> EpayApp:
    """The one way to build the app, for the CLI and every test.

    ``client=None`` connects to ``settings.server``, or starts the embedded sandbox
    backend when no server is configured.
    """
    return EpayApp(settings, client, clock)
