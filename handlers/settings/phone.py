"""The phone and handoff settings: where a call's language comes from, the voices and models per
language, and the human agents' targets per language (handlers/phone.py uses them).

Two of them name JSON files, read once here: a file that is missing, not JSON or of the wrong
shape stops the start with one line naming the variable, instead of a call that goes silent.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from .readers import SettingsError, read_flag, read_text


def digits(number: str) -> str:
    """A phone number as its digits only: "+34 911-234-567" and "34911234567" are one number."""
    return re.sub(r"\D", "", number)


def _json_file(source: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    path = read_text(source, name)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise SettingsError(f"{name}={path!r} cannot be read ({exc.strerror or exc}): point it "
                            "at an existing JSON file, or unset it") from None
    except ValueError as exc:
        raise SettingsError(f"{name}={path!r} is not valid JSON ({exc}): fix the file") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{name}={path!r} is not a JSON object: write "
                            '{"<language>": {...}, ...}')
    return data


def _language(name: str, code: Any, languages: tuple[str, ...]) -> str:
    if not isinstance(code, str) or code.strip().lower() not in languages:
        raise SettingsError(f"{name}: {code!r} is not one of LANGUAGES ({','.join(languages)}): "
                            "use one of them, or add it to LANGUAGES")
    return code.strip().lower()


def _phone_languages(source: Mapping[str, Any], languages: tuple[str, ...]
                     ) -> dict[str, dict[str, str]]:
    """PHONE_LANGUAGES' entries, which replace or add to handlers/phone.py's built-in table:
    each language `{"model": "<Speech to Text model>", "voice": "<Text to Speech voice>"}`."""
    table: dict[str, dict[str, str]] = {}
    data = _json_file(source, "PHONE_LANGUAGES")
    for code, entry in (data or {}).items():
        code = _language("PHONE_LANGUAGES", code, languages)
        if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str)
                                                and entry[key].strip()
                                                for key in ("model", "voice"))):
            raise SettingsError(f"PHONE_LANGUAGES: {code} needs a \"model\" and a \"voice\", "
                                'e.g. {"model": "es-ES_Telephony", "voice": '
                                '"es-ES_EnriqueV3Voice"}')
        table[code] = {"model": entry["model"].strip(), "voice": entry["voice"].strip()}
    return table


def _number_languages(source: Mapping[str, Any], languages: tuple[str, ...]) -> dict[str, str]:
    """PHONE_NUMBER_LANGUAGES, "+34911234567=es,+33170000000=fr": digits -> language."""
    raw = read_text(source, "PHONE_NUMBER_LANGUAGES")
    numbers: dict[str, str] = {}
    for pair in (raw or "").replace(";", ",").split(","):
        if not pair.strip():
            continue
        number, sep, code = pair.partition("=")
        if not sep or not digits(number):
            raise SettingsError(f"PHONE_NUMBER_LANGUAGES: {pair.strip()!r} is not "
                                "<number>=<language>: write e.g. +34911234567=es,+33170000000=fr")
        numbers[digits(number)] = _language("PHONE_NUMBER_LANGUAGES", code, languages)
    return numbers


def _handoff_targets(source: Mapping[str, Any], languages: tuple[str, ...]
                     ) -> dict[str, dict[str, Any]]:
    data = _json_file(source, "HANDOFF_TARGETS")
    targets: dict[str, dict[str, Any]] = {}
    for code, target in (data or {}).items():
        code = _language("HANDOFF_TARGETS", code, languages)
        if not isinstance(target, dict) or not target:
            raise SettingsError(f"HANDOFF_TARGETS: {code} needs an object of transfer_info.target "
                                'fields, e.g. {"zendesk": {"department": "Spanish"}}')
        targets[code] = target
    return targets


def read_phone(source: Mapping[str, Any], languages: tuple[str, ...]) -> dict[str, Any]:
    """The phone and handoff fields of Settings."""
    header = read_text(source, "PHONE_LANGUAGE_HEADER")
    if header is not None and not header.replace("-", "").replace("_", "").isalnum():
        raise SettingsError(f"PHONE_LANGUAGE_HEADER={header!r} is not a SIP header name: set "
                            "letters, digits and dashes only, e.g. X-Customer-Language")
    return {"phone_language_header": header,
            "phone_number_languages": _number_languages(source, languages),
            "phone_languages": _phone_languages(source, languages),
            "handoff_targets": _handoff_targets(source, languages),
            "handoff_note": read_flag(source, "HANDOFF_NOTE", True)}
