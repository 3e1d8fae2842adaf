"""Password hashing (scrypt), tokens from ``secrets``, HMAC signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str) -> str:
    """A salted scrypt hash, self-describing: ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a hash from :func:`hash_password`."""
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


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


def signature_ok(key: bytes, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(key, body), signature)


def new_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def new_id(prefix: str = "", nbytes: int = 12) -> str:
    return prefix + secrets.token_urlsafe(nbytes)
