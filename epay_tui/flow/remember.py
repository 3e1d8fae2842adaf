"""A helpdesk's "remember me": the staff token in the OS keyring, never in a file."""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger("epay_tui.helpdesk")
KEYRING_SERVICE = "epay-tui-helpdesk"


def remembered_token(account: str) -> str | None:
    """The remembered staff token, or None (also when no secure keyring exists)."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, account)
    except Exception:  # keyring raises many kinds (NoKeyringError, DBus, ValueError...)
        log.info("no keyring to read from", exc_info=True)
        return None


def remember_token(account: str, token: str | None) -> bool:
    """Remember (or with None forget) the token; False when no secure keyring exists.

    Never falls back to a file: a token the keyring cannot hold stays in memory only.
    """
    try:
        import keyring
        from keyring.backends.fail import Keyring as FailKeyring

        if isinstance(keyring.get_keyring(), FailKeyring):
            return False
        if token is None:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(KEYRING_SERVICE, account)
        else:
            keyring.set_password(KEYRING_SERVICE, account, token)
        return True
    except Exception:
        log.info("keyring refused the token", exc_info=True)
        return False
