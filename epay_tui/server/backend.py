"""The backend's shared context: config, store, school time, events, gateway."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from epay_tui.api.clock import Clock
from epay_tui.server.config import SchoolTime, ServerConfig
from epay_tui.server.events import OrderEvents
from epay_tui.server.gateway import Gateway, SandboxGateway
from epay_tui.server.keys import default_key_file, load_keys
from epay_tui.server.store import Store

log = logging.getLogger("epay_tui.server")


class KeyedLocks:
    """One re-entrant lock per key (an order number): serialises one order's steps."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks[key]
        with lock:
            yield


class Backend:
    """What every part of the server works with; built once per app."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.store = Store(config.db_path, upgrade=config.upgrade_schema)
        self.time = SchoolTime(clock, config.timezone, config.payment_hours)
        self.events = OrderEvents()
        self.order_locks = KeyedLocks()
        key_file = config.key_file or default_key_file(config.db_path)
        keys = load_keys(
            self.store, key_file and Path(key_file), config.notify_key, config.reset_code_key
        )
        self.notify_secret = keys.notify
        self.code_secret = keys.reset_code
        self.internal_url = f"http://{config.host}:{config.port}"
        self.captcha_rng = (
            random.Random(config.captcha_seed) if config.captcha_seed is not None else None  # noqa: S311
        )
        self.sandbox = SandboxGateway(self)
        """The gateway sandbox, with its payer's side (the pay page, notifies)."""
        self.gateway: Gateway = self.sandbox
        """The gateway as the backend uses it: create, query, close, statement."""

    @property
    def public_url(self) -> str:
        return (self.config.public_url or self.internal_url).rstrip("/")

    def audit(self, actor: str, action: str, target: str = "", detail: str | dict = "") -> None:
        """Append to the audit log. Never pass a password, token or code here."""
        text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO audit(at, actor, action, target, detail) VALUES (?,?,?,?,?)",
                (self.time.ts(), actor, action, target, text),
            )
        log.debug("audit %s", action)  # who and whom stay in the audit table, not in logs

    def send_message(
        self, conn: sqlite3.Connection, channel: str, to: str, body: str, secret: str = ""
    ) -> None:
        """Queue an SMS or e-mail (the sandbox's outbox stands for the real senders).

        A ``secret`` in the body (a reset code) is kept in clear only for the dev hooks'
        outbox; otherwise the record of the message has it masked."""
        if secret and not self.config.dev_hooks:
            body = body.replace(secret, "*" * len(secret))
        conn.execute(
            "INSERT INTO outbox(channel, to_addr, body, sent_at) VALUES (?,?,?,?)",
            (channel, to, body, self.time.ts()),
        )
