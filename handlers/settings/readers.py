"""Readers of one setting each: a value from the environment (or the overrides), checked.

Each raises `SettingsError` naming the variable, so a wrong value stops the start with a message
saying which setting to fix.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting has a value the kit cannot run with; the message names the variable."""


def read_text(source: Mapping[str, Any], name: str, default: str | None = None) -> str | None:
    value = source.get(name)
    if value is None:
        return default
    value = str(value).strip()
    return value if value else default


def read_choice(source: Mapping[str, Any], name: str, choices: tuple[str, ...],
                default: str) -> str:
    value = (read_text(source, name, default) or default).lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def read_number(source: Mapping[str, Any], name: str, default: float | None, *,
            cast: Callable[[Any], Any] = float, minimum: float | None = None,
            positive: bool = True) -> Any:
    raw = source.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if positive and not value > 0:
        raise SettingsError(f"{name}={raw!r} must be a positive number")
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def read_flag(source: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def read_codes(source: Mapping[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(";", ",").split(",")
    codes = tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))
    if not codes:
        raise SettingsError(f"{name} names no language")
    for code in codes:
        if not (2 <= len(code) <= 3 and code.isascii() and code.isalpha()):
            raise SettingsError(f"{name}: {code!r} is not an ISO 639-1 code (e.g. es, zh)")
    return codes
