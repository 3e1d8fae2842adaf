"""Tokens from ``secrets``, HMAC signatures; password hashing is api/kdf.py's."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from epay_tui.api.kdf import hash_password as hash_password
from epay_tui.api.kdf import verify_password as verify_password

DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
"""Verified against for unknown users, so they cost the same time as known ones."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a bearer token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(key: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text``: for short secrets such as reset codes."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")


def signature_ok(key: bytes, body: bytes, signature: str | None) -> bool:
    """A lower-case hex HMAC-SHA256 of ``body``; anything malformed is simply wrong."""
    if signature is None or not SIGNATURE_RE.fullmatch(signature):
        return False
    return hmac.compare_digest(sign(key, body).encode(), signature.encode())


def new_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    return prefix + secrets.token_urlsafe(nbytes)
