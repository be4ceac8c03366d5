"""Readers of one setting each: a value from the environment (or the overrides), checked.

Each raises `SettingsError` naming the variable, so a wrong value stops the start with a message
saying which setting to fix.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """A setting has a value the kit cannot run with; the message names the variable and says
    what to set instead."""


def settings_errors_in_one_line() -> None:
    """Make a SettingsError that nobody catches end the process with one line, "settings error:
    <the message>", instead of a traceback: the message already says which variable to fix and
    how. create_app calls this, so gunicorn's master and `flask --app handlers ...` stop that way
    on a wrong setting. Every other exception goes to the hook there was before."""
    previous = sys.excepthook
    if getattr(previous, "prints_settings_errors", False):
        return

    def hook(kind: type[BaseException], value: BaseException, traceback: Any) -> None:
        if issubclass(kind, SettingsError):
            print(f"settings error: {value}", file=sys.stderr, flush=True)
        else:
            previous(kind, value, traceback)

    hook.prints_settings_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


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
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}; set one of "
                            f"them, or unset {name} for {default}")
    return value


def read_number(source: Mapping[str, Any], name: str, default: float | None, *,
                cast: Callable[[Any], Any] = float, minimum: float | None = None,
                maximum: float | None = None, positive: bool = True) -> Any:
    """A number (`cast=int`: a whole one), above 0 unless `positive=False`, within `minimum`
    and `maximum` when given; `default` when unset or blank."""
    raw = source.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    kind = "a whole number" if cast is int else "a number"
    if minimum is not None and maximum is not None:
        expected = f"{kind} from {minimum:g} to {maximum:g}"
    elif minimum is not None:
        expected = f"{kind} of at least {minimum:g}"
    else:
        expected = f"{kind} above 0" if positive else kind
    try:
        value = cast(raw)
        wrong = (positive and not value > 0) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum) or value != value  # NaN
    except (TypeError, ValueError, OverflowError):
        wrong = True
    if wrong:
        raise SettingsError(f"{name}={raw!r} is not {expected}; set one, or unset {name} for "
                            "the default")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def read_log_level(source: Mapping[str, Any], name: str, default: str = "INFO") -> str:
    """A logging level (APP_LOG_LEVEL: the app's log lines and gunicorn's)."""
    level = (read_text(source, name) or default).upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"{name}={level!r} is not a logging level: set one of "
                            f"{', '.join(LOG_LEVELS)}")
    return level


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
    raise SettingsError(f"{name}={raw!r} is not a boolean: set true or false")


def read_codes(source: Mapping[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(";", ",").split(",")
    codes = tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))
    if not codes:
        raise SettingsError(f"{name} names no language; list ISO 639-1 codes, e.g. en,es")
    for code in codes:
        if not (2 <= len(code) <= 3 and code.isascii() and code.isalpha()):
            raise SettingsError(f"{name}: {code!r} is not an ISO 639-1 code; write two-letter "
                                "codes such as es or zh")
    return codes
