"""The reference backend's settings and the shared context its parts work in."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from epay_tui.api.clock import Clock, SystemClock
from epay_tui.api.rules import PaymentHours, parse_payment_hours

DEMO_SCHOOL = "常州工程职业技术学院"


@dataclass
class ServerConfig:
    """Everything ``epay-tui serve`` can set; defaults are the demo's."""

    db_path: str = ":memory:"
    """A SQLite file, ``:memory:``, or a PostgreSQL URL (``postgresql://...``)."""
    upgrade_schema: bool = True
    """An older schema is upgraded at start (the embedded backend owns its file);
    ``epay-tui serve`` refuses one instead and says to run ``epay-tui db upgrade``."""
    demo_data: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    order_ttl_seconds: int = 900
    payment_hours: PaymentHours = field(default_factory=lambda: parse_payment_hours("08:00-22:00"))
    public_url: str | None = None
    dev_hooks: bool = False
    timezone: str = "Asia/Shanghai"
    school: str = DEMO_SCHOOL
    payee: str = DEMO_SCHOOL
    session_idle_seconds: int = 30 * 60
    lock_after_failures: int = 5
    lock_seconds: int = 15 * 60
    tick_seconds: float = 0.2
    """How often (real time) expiry and due gateway notifies are swept."""
    key_file: str | None = None
    """The notify and reset-code keys (``0600``); default ``<database>.keys`` beside it."""
    notify_key: str | None = field(default=None, repr=False)
    reset_code_key: str | None = field(default=None, repr=False)
    """Both keys as hex from the environment instead of a key file."""
    request_timeout_seconds: float = 30.0
    """A request must arrive whole within this time of its first byte (or of connecting)."""
    max_connections: int = 1000
    """Open connections at once; more are closed at once (a fleet of 200 kiosks long-polls)."""
    workers: int = 1
    """Server processes on the one port (``--workers``; above 1 only on PostgreSQL)."""
    captcha_seed: int | None = None
    """Tests only (no flag): captchas repeat from this seed, so snapshots are stable."""

    def __post_init__(self) -> None:
        if self.dev_hooks and not is_loopback(self.host):
            raise ValueError("--dev-hooks is only allowed on a loopback address")
        if self.order_ttl_seconds <= 0:
            raise ValueError("--order-ttl must be positive")
        if self.max_connections < 1:
            raise ValueError("--max-connections must be positive")
        if self.workers < 1:
            raise ValueError("--workers must be at least 1")
        if self.workers > 1 and not is_database_url(self.db_path):
            raise ValueError(
                "--workers above 1 needs a PostgreSQL --db (postgresql://...): a SQLite file"
                " is served by one process"
            )
        if is_database_url(self.db_path) and not (
            self.key_file or (self.notify_key and self.reset_code_key)
        ):
            raise ValueError(
                "with a PostgreSQL --db, give the keys every worker shares: --key-file PATH,"
                " or EPAY_NOTIFY_KEY and EPAY_RESET_CODE_KEY"
            )


def is_database_url(db: str) -> bool:
    """A PostgreSQL URL rather than a SQLite file."""
    return db.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def redacted(db: str) -> str:
    """``db`` fit for a log line: a URL's password replaced by ``***``."""
    if not is_database_url(db) or "@" not in db:
        return db
    scheme, rest = db.split("://", 1)
    credentials, place = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{place}" if ":" in credentials else db


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SchoolTime:
    """The server's clock seen in the school's timezone: hours, days, deadlines."""

    def __init__(self, clock: Clock | None, timezone: str, hours: PaymentHours) -> None:
        self.clock = clock or SystemClock()
        self.zone = ZoneInfo(timezone)
        self.hours = hours

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    def ts(self) -> float:
        return self.clock.now().timestamp()

    def at(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.zone)

    def open_now(self) -> bool:
        return self.hours.is_open(self.now())

    def todays_close(self) -> float:
        """Timestamp of today's closing time (``24:00`` is next midnight)."""
        midnight = self.now().replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight + timedelta(minutes=self.hours.closes_minute)).timestamp()

    def day_bounds(self, day: datetime | None = None) -> tuple[float, float]:
        start = (day or self.now()).replace(hour=0, minute=0, second=0, microsecond=0)
        if start.tzinfo is None:
            start = start.replace(tzinfo=self.zone)
        return start.timestamp(), (start + timedelta(days=1)).timestamp()
