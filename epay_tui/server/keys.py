"""The backend's two keys, kept away from the database they protect.

The notify key signs the gateway's notifies; the reset-code key makes the digests of
reset codes (and of unknown usernames in the audit log). Whoever holds a copy of the
database must not hold them too, so they come from the environment or from a key file
readable by its owner only -- never from the database. A database made by an earlier
version still holds them in its settings: they move out on its first start.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from epay_tui.files import others_can_read, write_private
from epay_tui.server.config import is_database_url
from epay_tui.server.store import Store

log = logging.getLogger("epay_tui.server")

KEY_BYTES = 32
LEGACY_SETTINGS = {"notify": "gateway_notify_secret", "reset_code": "reset_code_secret"}
"""Where versions before the key file kept the keys, in the database's settings."""


@dataclass(frozen=True)
class Keys:
    notify: bytes
    reset_code: bytes


def default_key_file(db_path: str) -> Path | None:
    """``backend.sqlite3`` -> ``backend.keys`` in the same data folder; none in memory
    or for a database server (its keys are given)."""
    if db_path == ":memory:" or is_database_url(db_path):
        return None
    return Path(db_path).with_suffix(".keys")


def parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"{where}: a key is {KEY_BYTES * 2} hex digits") from None
    if len(key) < KEY_BYTES:
        raise ValueError(f"{where}: a key is at least {KEY_BYTES * 2} hex digits")
    return key


def load_keys(
    store: Store, key_file: Path | None, notify: str | None, reset_code: str | None
) -> Keys:
    """The keys from the environment (``notify``/``reset_code`` hex), else the key file.

    A key file others can read is refused; a missing one is made (moving the keys out
    of an older database, or new ones). With neither a file nor a database file the
    keys live in memory only."""
    legacy = store.take_settings(tuple(LEGACY_SETTINGS.values()))
    given = {"notify": notify, "reset_code": reset_code}
    if any(given.values()) and not all(given.values()):
        raise ValueError("set both EPAY_NOTIFY_KEY and EPAY_RESET_CODE_KEY, or neither")
    if all(given.values()):
        keys = {name: parse_key(text, f"EPAY_{name.upper()}_KEY") for name, text in given.items()}
    elif key_file is None:
        keys = {name: secrets.token_bytes(KEY_BYTES) for name in LEGACY_SETTINGS}
    else:
        keys = _from_file(key_file, legacy)
    if legacy:
        store.erase_settings(tuple(legacy))
        log.warning("keys moved out of the database into the key file")
    return Keys(notify=keys["notify"], reset_code=keys["reset_code"])


def _from_file(key_file: Path, legacy: dict[str, str]) -> dict[str, bytes]:
    if key_file.exists():
        if others_can_read(key_file):
            raise ValueError(
                f"key file {key_file} can be read by other users: chmod 600 it"
                " (and rotate the keys if someone may have read it)"
            )
        try:
            stored = json.loads(key_file.read_text(encoding="utf-8"))
            return {name: parse_key(stored[name], str(key_file)) for name in LEGACY_SETTINGS}
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"key file {key_file} is damaged: restore it from a backup") from None
    keys = {name: secrets.token_bytes(KEY_BYTES) for name in LEGACY_SETTINGS}
    for name, setting in LEGACY_SETTINGS.items():
        if setting in legacy:
            keys[name] = parse_key(legacy[setting], "the database's settings")
    text = json.dumps({name: key.hex() for name, key in keys.items()}, indent=1)
    write_private(key_file, text.encode())  # written before the database forgets them
    return keys
