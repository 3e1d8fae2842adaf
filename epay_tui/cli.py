"""``epay-tui``: the terminal client, and ``epay-tui serve``: the reference backend."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the reference payment backend and gateway sandbox")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=8000)
    _db_flag(p)
    p.add_argument("--demo-data", action="store_true", help="seed an empty database")
    p.add_argument("--order-ttl", type=int, default=900, metavar="SECONDS")
    p.add_argument("--payment-hours", default="08:00-22:00", metavar="HH:MM-HH:MM")
    p.add_argument("--public-url", default=None, help="base URL a phone uses for pay links")
    p.add_argument("--dev-hooks", action="store_true", help="latest captcha and outbox (loopback)")
    p.add_argument(
        "--key-file",
        default=None,
        metavar="PATH",
        help="notify and reset-code keys, 0600 (default: the database's name with .keys;"
        " or set EPAY_NOTIFY_KEY and EPAY_RESET_CODE_KEY)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes on the one port (above 1 needs a PostgreSQL --db)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open connections at once; more are closed (default 1000)",
    )


def _db_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        metavar="PATH|URL",
        help="SQLite file (default: in the user data dir) or postgresql://user:pass@host/db",
    )


def _db_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="the backend's database")
    actions = p.add_subparsers(dest="db_command", required=True)
    _db_flag(actions.add_parser("upgrade", help="bring the schema to this version's"))


def db_main(args: argparse.Namespace) -> int:
    """``epay-tui db upgrade``: an empty database gets the schema, an older one is
    brought on; says which version it found and which it left."""
    from epay_tui.server.store import Store, migrations

    db = args.db or default_db_path()
    try:
        store = Store(db, upgrade=False, prepare=False)
        try:
            before, after = migrations.upgrade_database(store.engine)
        finally:
            store.close()
    except Exception as exc:  # a driver's own error, worded by it
        print(f"epay-tui db upgrade: {exc}", file=sys.stderr)
        return 2
    found = before or "none (empty, or from before versions)"
    print(f"schema version {after} (found {found})", flush=True)
    return 0


def serve_main(args: argparse.Namespace) -> int:
    from epay_tui.api.rules import parse_payment_hours
    from epay_tui.server.config import ServerConfig
    from epay_tui.server.runner import serve
    from epay_tui.server.store import SchemaTooOld

    try:
        config = ServerConfig(
            db_path=args.db or default_db_path(),
            upgrade_schema=False,
            demo_data=args.demo_data,
            host=args.host,
            port=args.port,
            order_ttl_seconds=args.order_ttl,
            payment_hours=parse_payment_hours(args.payment_hours),
            public_url=args.public_url,
            dev_hooks=args.dev_hooks,
            key_file=args.key_file,
            notify_key=os.environ.get("EPAY_NOTIFY_KEY") or None,
            reset_code_key=os.environ.get("EPAY_RESET_CODE_KEY") or None,
            max_connections=args.max_connections,
            workers=args.workers,
        )
        serve(config, announce=lambda line: print(line, flush=True))
    except (ValueError, OSError, SchemaTooOld) as exc:
        print(f"epay-tui serve: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def data_dir():
    """The user's epay-tui data folder (database, keys, log), ``0700``."""
    from platformdirs import user_data_dir

    from epay_tui.files import private_dir

    return private_dir(user_data_dir("epay-tui"), ours=True)


def default_db_path() -> str:
    return str(data_dir() / "backend.sqlite3")


def _client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=None,
        metavar="URL",
        help="backend URL (default: start the embedded sandbox backend)",
    )
    parser.add_argument("--lang", choices=("zh", "en"), default=None)
    parser.add_argument(
        "--kiosk", action="store_true", default=None, help="unattended public terminal"
    )
    parser.add_argument("--helpdesk", action="store_true", default=None, help="staff helpdesk")
    parser.add_argument(
        "--idle-timeout", type=int, default=None, metavar="SECONDS", help="kiosk idle logout"
    )
    parser.add_argument(
        "--printer",
        default=None,
        metavar="TARGET",
        help="receipt printer: usb:VID:PID, network:HOST[:PORT], serial:DEVICE or file:PATH",
    )
    parser.add_argument("--config", default=None, metavar="PATH", help="TOML settings file")


def _web_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve the client to a browser (a kiosk's Chromium)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    p.add_argument(
        "--public",
        action="store_true",
        help="allow a --host other than loopback: anyone who reaches it gets a client",
    )
    _client_flags(p)


def run_client(args: argparse.Namespace) -> int:
    from epay_tui.config import SettingsError, client_settings

    try:
        settings = client_settings(args)
    except SettingsError as exc:
        print(f"epay-tui: {exc}", file=sys.stderr)
        return 2
    log_to_file()
    from epay_tui.app import make_app

    make_app(settings).run()
    return 0


def hash_pin() -> int:
    """Ask for a PIN twice (not echoed) and print ``staff_pin_hash = "..."`` for config."""
    from getpass import getpass

    from epay_tui.api.kdf import hash_password

    pin = getpass("staff PIN: ")
    if len(pin) < 4 or pin != getpass("again: "):
        print("epay-tui hash-pin: the PINs differ or are shorter than 4", file=sys.stderr)
        return 2
    print(f'[kiosk]\nstaff_pin_hash = "{hash_password(pin)}"')
    return 0


def log_to_file() -> None:
    """Logs go to a file in the data dir: never to the screen or stdout."""
    import logging

    from epay_tui.files import private_file

    handler = logging.FileHandler(private_file(data_dir() / "epay-tui.log"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # URLs hold order numbers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="epay-tui", description=__doc__)
    _client_flags(parser)
    sub = parser.add_subparsers(dest="command")
    _serve_parser(sub)
    _db_parser(sub)
    sub.add_parser("hash-pin", help="print the scrypt hash of a kiosk staff PIN for the config")
    _web_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve_main(args)
    if args.command == "db":
        return db_main(args)
    if args.command == "hash-pin":
        return hash_pin()
    if args.command == "web":
        from epay_tui.web import web_main

        return web_main(args, log_to_file)
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
