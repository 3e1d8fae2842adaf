"""Client settings: defaults < TOML file < ``EPAY_*`` environment < command-line flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

ENV_PREFIX = "EPAY_"


class Settings(BaseModel):
    """Everything the client can be told; each field documents itself."""

    server: str | None = Field(
        None, description="Backend base URL; unset starts the embedded sandbox backend"
    )
    lang: Literal["zh", "en"] = Field("zh", description="Language at start (f2 switches)")
    kiosk: bool = Field(False, description="Unattended public terminal mode")
    helpdesk: bool = Field(False, description="Staff helpdesk mode")
    idle_timeout: int = Field(120, ge=10, le=3600, description="Kiosk idle logout, seconds")
    staff_pin_hash: str | None = Field(None, description="scrypt hash of the kiosk staff PIN")
    timeout: float = Field(10.0, gt=0, le=120, description="HTTP timeout, seconds")

    @field_validator("server")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("server must be an http:// or https:// URL")
        return value.rstrip("/")


class SettingsError(ValueError):
    """A config file, variable or flag that cannot be used; the message says which."""


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("epay-tui")) / "config.toml"


def _from_toml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise SettingsError(f"config file not found: {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    kiosk = data.pop("kiosk", {})
    if isinstance(kiosk, dict):
        data.update({k: v for k, v in kiosk.items() if k in ("idle_timeout", "staff_pin_hash")})
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    found = {}
    for name in Settings.model_fields:
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None:
            found[name] = value
    return found


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | str | None = None,
) -> Settings:
    """Merge the four layers; flags that were not given are ``None`` and do not count."""
    path = Path(config_path) if config_path else default_config_path()
    merged: dict[str, Any] = {}
    merged.update(_from_toml(path, required=config_path is not None))
    merged.update(_from_env(os.environ if env is None else env))
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(problems) from None
