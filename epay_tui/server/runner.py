"""Run the backend: in a background thread (embedded default, tests) or in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import replace

import uvicorn
from uvicorn.supervisors import Multiprocess

from epay_tui.api.clock import Clock
from epay_tui.server.app import create_app
from epay_tui.server.config import ServerConfig, redacted
from epay_tui.server.guard import guarded_protocol
from epay_tui.server.store.engine import CONNECTIONS_PER_WORKER

KEEP_ALIVE_SECONDS = 75
"""An idle connection stays open this long (as nginx's default): well past the client's
``KEEPALIVE_SECONDS``, so the client always closes first and never sends a request
into a connection the server is closing."""


def bind(host: str, port: int) -> socket.socket:
    """Bind first, so port 0 gives a free port that is known before the app is built."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server that stops as soon as it is told (:meth:`stop_now`), not at its
    next tenth-of-a-second look."""

    _loop: asyncio.AbstractEventLoop | None = None
    _told: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop, self._told = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):  # uvicorn's duties, ten times a second
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._told.wait(), 0.1)

    def stop_now(self) -> None:
        """From any thread."""
        self.should_exit = True
        loop, told = self._loop, self._told
        if loop is not None and told is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(told.set)


def _uvicorn_settings(config: ServerConfig) -> dict:
    return {
        "http": guarded_protocol(config.request_timeout_seconds, config.max_connections),
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 2,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "ws": "none",
    }


def _uvicorn(app, config: ServerConfig) -> _Server:
    return _Server(uvicorn.Config(app, **_uvicorn_settings(config)))


class WorkerConfig(uvicorn.Config):
    """uvicorn's settings for ``--workers N``: sent to each worker process as they are
    (picklable), and only there is the app built and the guard made."""

    def __init__(self, config: ServerConfig, workers: int) -> None:
        super().__init__(
            "epay_tui.server.app:create_app", workers=workers, **_uvicorn_settings(config)
        )
        self.http = "h11"  # the guard is a class made at run time: made again in the worker
        self.server_config = config

    def load(self) -> None:
        config = self.server_config
        self.http = guarded_protocol(config.request_timeout_seconds, config.max_connections)
        super().load()

    def load_app(self):
        return create_app(self.server_config)


class BackgroundServer:
    """The backend on a loopback port in a daemon thread; ``url`` once started."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.sock = bind(config.host, config.port)
        self.port = self.sock.getsockname()[1]
        self.config = replace(config, port=self.port)
        try:
            self.app = create_app(self.config, clock)
        except BaseException:
            self.sock.close()
            raise
        self.backend = self.app.state.backend
        self.url = self.backend.internal_url
        self.public_url = self.backend.public_url
        self._server = _uvicorn(self.app, self.config)
        self._server.install_signal_handlers = lambda: None  # not the main thread
        self._thread = threading.Thread(target=self._run, name="epay-backend", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self.sock]))
        finally:
            self.backend.store.close()
            self.sock.close()

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the backend did not start")
            time.sleep(0.005)
        return self

    def stop_soon(self) -> None:
        """Ask the server to stop and return at once: its thread closes the database
        and ends by itself, or with the process (what the client does when it quits)."""
        self.backend.events.close()
        self._server.stop_now()

    def stop(self) -> None:
        """Stop and wait until the server has ended, its database closed."""
        self.stop_soon()
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(config: ServerConfig, announce=print) -> None:
    """``epay-tui serve``: bind, say where in one line, serve until interrupted. With
    ``--workers N`` the database is checked (and seeded) here once, then N worker
    processes serve the one socket; one that dies is started again."""
    sock = bind(config.host, config.port)
    config = replace(config, port=sock.getsockname()[1])
    app = create_app(config)
    backend = app.state.backend
    if config.workers > 1:
        _check_connections(backend.store, config.workers)
    workers = f", {config.workers} workers" if config.workers > 1 else ""
    announce(
        f"epay-tui backend listening on {backend.internal_url} (public {backend.public_url},"
        f" db {redacted(config.db_path)}{workers}, payment hours {config.payment_hours}"
        f"{', dev hooks' if config.dev_hooks else ''})"
    )
    if config.workers == 1:
        asyncio.run(_uvicorn(app, config).serve(sockets=[sock]))
        return
    backend.store.close()  # each worker opens its own
    Multiprocess(WorkerConfig(replace(config, demo_data=False), config.workers), [sock]).run()


def _check_connections(store, workers: int) -> None:
    """Refuse, in words, more workers than the database server has connections for."""
    need, allowed = workers * CONNECTIONS_PER_WORKER, store.connections_allowed()
    if need > allowed:
        store.close()
        raise ValueError(
            f"--workers {workers} may open {need} database connections"
            f" ({CONNECTIONS_PER_WORKER} each) and the database server allows {allowed}:"
            " run fewer workers, or raise PostgreSQL's max_connections"
        )
