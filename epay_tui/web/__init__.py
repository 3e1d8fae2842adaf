"""``epay-tui web``: the client served to a browser, for kiosks that run Chromium.

textual-serve starts one client process per browser connection (``python -m epay_tui``
with this command's client flags) and relays its screen to xterm.js on our own page
(``page.html``, ``page.js``, ``page.css`` here): the school's name as its title, the
terminal sized for 80x24 or more and given the keyboard at once, keys typed before the
client has drawn held back rather than lost, every file from this server and nothing
from elsewhere, and a clear message when the client ends.

Without ``--server`` one embedded sandbox backend with the demo college is started here
and shared by every connection. There is no login to the page itself: it binds to
loopback unless ``--public`` says otherwise, with a warning.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import logging
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from textual_serve.server import Server

HERE = Path(__file__).parent
DEFAULT_TITLE = "epay-tui"
PUBLIC_WARNING = (
    "WARNING: serving on {host}, an address other machines can reach: anyone who reaches"
    " http://{host}:{port} gets a fee-payment client, started for them, with no login of"
    " its own before a student's. Put it behind a firewall that only lets the kiosks in."
)
log = logging.getLogger("epay_tui.web")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve anywhere


def client_argv(args: argparse.Namespace, server: str) -> list[str]:
    """The command a browser connection runs: this Python, this package, the flags."""
    argv = [sys.executable, "-m", "epay_tui", "--server", server]
    if args.lang:
        argv += ["--lang", args.lang]
    if args.kiosk:
        argv.append("--kiosk")
    if args.helpdesk:
        argv.append("--helpdesk")
    if args.idle_timeout is not None:
        argv += ["--idle-timeout", str(args.idle_timeout)]
    if args.printer:
        argv += ["--printer", args.printer]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    return argv


def web_main(args: argparse.Namespace, log_to_file: Any) -> int:
    """Check the flags, start the embedded backend if no server is set, serve."""
    from epay_tui.config import SettingsError, client_settings

    if not is_loopback(args.host) and not args.public:
        print(
            f"epay-tui web: {args.host} is not a loopback address; anyone who reaches it"
            " would get a client with no login of its own. Add --public to serve it anyway.",
            file=sys.stderr,
        )
        return 2
    try:
        settings = client_settings(args)
    except SettingsError as exc:
        print(f"epay-tui web: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"epay-tui web: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        port = sock.getsockname()[1]
        print("epay-tui web: " + PUBLIC_WARNING.format(host=args.host, port=port), file=sys.stderr)
    log_to_file()
    embedded = None
    server_url = settings.server
    if server_url is None:
        from epay_tui.server.config import ServerConfig
        from epay_tui.server.runner import BackgroundServer

        embedded = BackgroundServer(ServerConfig(demo_data=True, port=0)).start()
        server_url = embedded.url
    command = shlex.join(client_argv(args, server_url))
    try:
        KioskPageServer(command, sock, server_url).serve()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _bind(host: str, port: int) -> socket.socket:
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class KioskPageServer(Server):
    """textual-serve's server with our page, bound to a socket we made (port 0 works)."""

    def __init__(self, command: str, sock: socket.socket, backend_url: str) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(command, host=host, port=port)
        self.sock = sock
        self.backend_url = backend_url
        self.school: str | None = None
        self.page = (HERE / "page.html").read_text(encoding="utf-8")

    def initialize_logging(self) -> None:
        """Our log file (set up by the caller); problems also on stderr, never stdout."""
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("epay-tui web: %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_static("/epay", HERE / "static", name="epay")
        app.router.add_get("/health", self.handle_health)
        return app

    async def on_startup(self, app: web.Application) -> None:
        print(
            f"epay-tui web: serving http://{self.host}:{self.port} (backend {self.backend_url})",
            flush=True,
        )

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def school_name(self) -> str:
        """The school's name from the backend's ``/meta``, once it has answered."""
        if self.school is None:
            from epay_tui.api.client import ApiClient
            from epay_tui.api.errors import ApiError

            try:
                async with ApiClient(self.backend_url, timeout=3.0) as api:
                    self.school = (await api.meta()).school
            except ApiError as exc:
                log.warning("the backend's /meta did not answer (%s): the title waits", exc)
                return DEFAULT_TITLE
        return self.school

    async def handle_index(self, request: web.Request) -> web.Response:
        title = html.escape(await self.school_name())
        body = self.page.replace("{{title}}", title)
        return web.Response(
            text=body,
            content_type="text/html",
            headers={
                # Everything from this server; xterm.js adds <style> elements of its own.
                "Content-Security-Policy": (
                    "default-src 'self'; style-src 'self' 'unsafe-inline';"
                    " img-src 'self' data:; base-uri 'none'; form-action 'none'"
                ),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )

    def serve(self, debug: bool = False) -> None:
        """Like textual-serve's, on our socket; ends on SIGINT or SIGTERM."""
        import asyncio
        import signal

        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_exit)
        web.run_app(
            self._make_app(),
            sock=self.sock,
            handle_signals=False,
            loop=loop,
            print=lambda *_: None,
            access_log=None,
        )
