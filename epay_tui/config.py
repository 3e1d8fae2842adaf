"""Client settings: defaults < TOML file < ``EPAY_*`` environment < command-line flags.

Plain dataclasses (no pydantic): settings are read before the first frame, and the
first frame should not wait for a validation library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "EPAY_"


class SettingsError(ValueError):
    """A config file, variable or flag that cannot be used; the message says which."""


@dataclass(frozen=True)
class Settings:
    """Everything the client can be told."""

    server: str | None = None
    """Backend base URL; unset starts the embedded sandbox backend."""
    lang: str = "zh"
    """Language at start: ``zh`` or ``en`` (f2 switches)."""
    kiosk: bool = False
    """Unattended public terminal mode."""
    helpdesk: bool = False
    """Staff helpdesk mode."""
    idle_timeout: int = 120
    """Kiosk: seconds without a key before the logout countdown (10-3600)."""
    staff_pin_hash: str | None = None
    """Kiosk: scrypt hash of the staff PIN that quitting asks for."""
    timeout: float = 10.0
    """HTTP timeout in seconds."""
    printer: str | None = None
    """Receipt printer: ``usb:VID:PID``, ``network:HOST[:PORT]``, ``serial:DEVICE`` or
    ``file:PATH`` (see ``epay_tui.printing.parse_target``); unset prints nothing."""

    def __post_init__(self) -> None:
        if self.server is not None and not self.server.startswith(("http://", "https://")):
            raise SettingsError(f"server must be an http:// or https:// URL, not {self.server!r}")
        if self.lang not in ("zh", "en"):
            raise SettingsError(f"lang must be zh or en, not {self.lang!r}")
        if not 10 <= self.idle_timeout <= 3600:
            raise SettingsError(f"idle_timeout must be 10-3600 seconds, not {self.idle_timeout}")
        if not 0 < self.timeout <= 120:
            raise SettingsError(f"timeout must be 0-120 seconds, not {self.timeout}")
        if self.printer is not None:
            from epay_tui.printing import parse_target

            try:
                parse_target(self.printer)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None


_TYPES = {
    "server": str,
    "lang": str,
    "kiosk": bool,
    "helpdesk": bool,
    "idle_timeout": int,
    "staff_pin_hash": str,
    "timeout": float,
    "printer": str,
}


def _coerce(name: str, value: Any) -> Any:
    """Values from TOML, env or flags to the field's type, with a clear error."""
    kind = _TYPES[name]
    if value is None or (isinstance(value, str) and value == "" and name in ("server", "printer")):
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{name} must be true or false, not {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise SettingsError(f"{name} must be a number, not {value!r}")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{name} must be a number, not {value!r}") from None
    if not isinstance(value, str):
        raise SettingsError(f"{name} must be text, not {value!r}")
    return value.rstrip("/") if name == "server" else value


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("epay-tui")) / "config.toml"


def _from_toml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise SettingsError(f"config file not found: {path}")
        return {}
    import tomllib  # only with a file to read: start-up does without it otherwise

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    kiosk = data.pop("kiosk", {})
    if isinstance(kiosk, dict):
        data.update({k: v for k, v in kiosk.items() if k in ("idle_timeout", "staff_pin_hash")})
    if "printer" in data:
        printer = data.pop("printer")
        if not isinstance(printer, dict):
            raise SettingsError(f'printer in {path} goes in a [printer] table: target = "..."')
        unknown = set(printer) - {"target"}
        if unknown:
            names = ", ".join(f"printer.{k}" for k in sorted(unknown))
            raise SettingsError(f"unknown setting(s) in {path}: {names}")
        if "target" in printer:
            data["printer"] = printer["target"]
    unknown = set(data) - set(_TYPES)
    if unknown:
        raise SettingsError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: env[ENV_PREFIX + name.upper()] for name in _TYPES if ENV_PREFIX + name.upper() in env
    }


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
    return Settings(**{k: _coerce(k, v) for k, v in merged.items()})


CLIENT_FLAGS = ("server", "lang", "kiosk", "helpdesk", "idle_timeout", "printer")
"""The command line's client flags that are settings (``--config`` names the file)."""


def client_settings(args: Any) -> Settings:
    """The settings of ``epay-tui`` and ``epay-tui web`` from their parsed flags (an
    ``argparse.Namespace``), the config file and the variables."""
    flags = {name: getattr(args, name) for name in CLIENT_FLAGS}
    return load_settings(flags, config_path=args.config)
