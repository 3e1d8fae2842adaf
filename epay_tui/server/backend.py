"""The backend's shared context: config, store, school time, events, gateway."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from epay_tui.api.clock import Clock
from epay_tui.server.config import SchoolTime, ServerConfig
from epay_tui.server.events import OrderEvents
from epay_tui.server.gateway import Gateway, SandboxGateway
from epay_tui.server.keys import default_key_file, load_keys
from epay_tui.server.store import Store, journal
from epay_tui.server.store.engine import Tx

log = logging.getLogger("epay_tui.server")


class Backend:
    """What every part of the server works with; built once per app."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.store = Store(config.db_path, upgrade=config.upgrade_schema)
        self.time = SchoolTime(clock, config.timezone, config.payment_hours)
        self.events = OrderEvents(relay=self.store.announce)
        self.changes = self.store.change_feed(self.events.wake, self.events.wake_all)
        """Other workers' word of changed orders (PostgreSQL); started with the app."""
        self.order_locks = self.store.keyed_locks()
        """One order's steps at a time, in every worker."""
        self.leadership = self.store.leadership()
        """Whether this worker runs the background duties."""
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
        with self.store.write() as tx:  # joins the change's transaction when one is open
            journal.append_audit(tx, self.time.ts(), actor, action, target, text)
        log.debug("audit %s", action)  # who and whom stay in the audit table, not in logs

    def send_message(self, tx: Tx, channel: str, to: str, body: str, secret: str = "") -> None:
        """Queue an SMS or e-mail (the sandbox's outbox stands for the real senders).

        A ``secret`` in the body (a reset code) is kept in clear only for the dev hooks'
        outbox; otherwise the record of the message has it masked."""
        if secret and not self.config.dev_hooks:
            body = body.replace(secret, "*" * len(secret))
        journal.queue_message(tx, self.time.ts(), channel, to, body)
