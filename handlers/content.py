"""The content store: answers kept outside the assistant, by key and language (`CONTENT_DIR`).

IBM's documented post-message use case: the assistant answers with a key and the webhook puts in
the text, so writers edit answers (and their hand-made translations) without touching the
assistant. The folder holds one JSON object per language, either as `<language>.json` or as any
number of `<language>/*.json` files:

    content/en.json      {"opening_hours": "We are open 9:00 to 17:00, Monday to Friday.",
                          "returns": [{"response_type": "text", "text": "..."},
                                      {"response_type": "image", "source": "https://..."}]}
    content/es.json      {"opening_hours": "Abrimos de 9:00 a 17:00, de lunes a viernes."}

A value is a text, one response item, or a list of them. Everything is read and checked once,
at start-up (a broken file stops the server with its name, never a request); lookups then hand
out fresh copies, so a reply being translated never changes the store.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
from typing import Any, Iterable

from .language import language_tag
from .settings import SettingsError

log = logging.getLogger(__name__)
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


class ContentStore:
    """Content items by language and key, as compact JSON texts (parsed again per lookup)."""

    def __init__(self, entries: dict[str, dict[str, str]] | None = None) -> None:
        self._entries = entries or {}

    @classmethod
    def load(cls, folder: str | pathlib.Path | None) -> "ContentStore":
        """Read every language file of `folder` (None: an empty store)."""
        if not folder:
            return cls()
        root = pathlib.Path(folder)
        entries: dict[str, dict[str, str]] = {}
        origin: dict[tuple[str, str], pathlib.Path] = {}
        for language, path in _language_files(root):
            for key, items in _read(path).items():
                if (language, key) in origin:
                    raise SettingsError(f"CONTENT_DIR: key {key!r} is defined in both "
                                        f"{origin[language, key]} and {path}")
                origin[language, key] = path
                entries.setdefault(language, {})[key] = json.dumps(
                    items, ensure_ascii=False, separators=(",", ":"))
        log.info("content store loaded", extra={"fields": {
            "languages": sorted(entries), "keys": sum(len(keys) for keys in entries.values())}})
        return cls(entries)

    @property
    def languages(self) -> list[str]:
        return sorted(self._entries)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._entries.values())

    def lookup(self, key: str, languages: Iterable[str | None]) -> tuple[str, list[dict[str, Any]]] | None:
        """The items for `key` in the first of `languages` that has them, and that language.

        Each language is tried as given, then by its base ("pt-br" -> "pt")."""
        for language in _with_bases(languages):
            found = self._entries.get(language, {}).get(key)
            if found is not None:
                return language, json.loads(found)
        return None


def _with_bases(languages: Iterable[str | None]) -> list[str]:
    tried: list[str] = []
    for language in languages:
        tag = language_tag(language)
        if tag is None:
            continue
        for code in (tag, tag.split("-")[0]):
            if code not in tried:
                tried.append(code)
    return tried


def _language_files(root: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    files: list[tuple[str, pathlib.Path]] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix == ".json":
            files.append((_language_of(path.stem, path), path))
        elif path.is_dir():
            language = _language_of(path.name, path)
            files.extend((language, inner) for inner in sorted(path.glob("*.json"))
                         if not inner.name.startswith("."))
    return files


def _language_of(name: str, path: pathlib.Path) -> str:
    code = language_tag(name)
    if code is None or not LANGUAGE_CODE.match(code):
        raise SettingsError(f"CONTENT_DIR: {path} is not named after a language code "
                            "(expected e.g. en.json, es.json, pt-br.json or a folder es/)")
    return code


def _read(path: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"CONTENT_DIR: cannot read {path}: {type(exc).__name__}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"CONTENT_DIR: {path} is not valid JSON "
                            f"(line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"CONTENT_DIR: {path} must hold a JSON object of key -> content")
    return {str(key): _items(value, path, str(key)) for key, value in data.items()}


def _items(value: Any, path: pathlib.Path, key: str) -> list[dict[str, Any]]:
    """A text, one response item or a list of them, as a list of response items."""
    values = value if isinstance(value, list) else [value]
    items: list[dict[str, Any]] = []
    for entry in values:
        if isinstance(entry, str):
            items.append({"response_type": "text", "text": entry})
        elif isinstance(entry, dict) and isinstance(entry.get("response_type"), str):
            items.append(entry)
        else:
            raise SettingsError(f"CONTENT_DIR: {path}, key {key!r}: each content must be a text "
                                'or a response item ({"response_type": ...})')
    if not items:
        raise SettingsError(f"CONTENT_DIR: {path}, key {key!r} is an empty list")
    return items
