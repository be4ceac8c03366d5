"""The content store (`CONTENT_DIR`): loading, checking at start-up, lookups per language."""

from __future__ import annotations

import json
import pathlib

import pytest

from handlers import SettingsError
from handlers.content import ContentStore


def write(folder: pathlib.Path, name: str, data: object) -> pathlib.Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def content_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "content"
    write(folder, "en.json", {
        "hours": "We are open 9:00 to 17:00.",
        "returns": [{"response_type": "text", "text": "Returns are free."},
                    {"response_type": "image", "source": "https://example.com/r.png",
                     "title": "Returns label"}],
        "card": {"response_type": "text", "text": "One item"}})
    write(folder, "es.json", {"hours": "Abrimos de 9:00 a 17:00."})
    write(folder, "pt-BR/faq.json", {"hours": "Abrimos das 9h às 17h."})
    write(folder, "pt-BR/more.json", {"returns": "Devoluções grátis."})
    write(folder, "README.md", "not content")
    return folder


def test_values_become_response_items(content_dir):
    store = ContentStore.load(content_dir)
    assert store.languages == ["en", "es", "pt-br"]
    assert len(store) == 6
    assert store.lookup("hours", ["en"]) == (
        "en", [{"response_type": "text", "text": "We are open 9:00 to 17:00."}])
    language, items = store.lookup("returns", ["en"])
    assert [item["response_type"] for item in items] == ["text", "image"]
    assert store.lookup("card", ["en"]) == ("en", [{"response_type": "text", "text": "One item"}])


def test_lookup_prefers_the_first_language_that_has_the_key(content_dir):
    store = ContentStore.load(content_dir)
    assert store.lookup("hours", ["es", "en"]) == (
        "es", [{"response_type": "text", "text": "Abrimos de 9:00 a 17:00."}])
    # No Spanish version: the assistant's language is next.
    assert store.lookup("returns", ["es", "en"])[0] == "en"
    # A folder per language merges its files; regional codes match case-insensitively.
    assert store.lookup("returns", ["pt-br", "en"])[1][0]["text"] == "Devoluções grátis."
    assert store.lookup("hours", ["PT_BR"])[0] == "pt-br"
    # A regional language falls back to its base language.
    assert store.lookup("hours", ["es-MX", "en"])[0] == "es"
    assert store.lookup("hours", [None, "en"])[0] == "en"


def test_unknown_key_is_none(content_dir):
    store = ContentStore.load(content_dir)
    assert store.lookup("nope", ["es", "en"]) is None
    assert ContentStore.load(None).lookup("hours", ["en"]) is None


def test_lookups_are_copies(content_dir):
    store = ContentStore.load(content_dir)
    items = store.lookup("hours", ["en"])[1]
    items[0]["text"] = "changed"
    assert store.lookup("hours", ["en"])[1][0]["text"] == "We are open 9:00 to 17:00."


@pytest.mark.parametrize("name,data,message", [
    ("en.json", "{not json", "not valid JSON (line 1"),
    ("en.json", ["a list"], "must hold a JSON object"),
    ("en.json", {"k": 42}, "key 'k': each content must be a text"),
    ("en.json", {"k": [{"text": "no type"}]}, "key 'k': each content must be a text"),
    ("en.json", {"k": []}, "key 'k' is an empty list"),
    ("english.json", {"k": "v"}, "is not named after a language code"),
])
def test_broken_files_stop_the_start_with_their_name(tmp_path, name, data, message):
    write(tmp_path, name, data)
    with pytest.raises(SettingsError) as error:
        ContentStore.load(tmp_path)
    assert message in str(error.value)
    assert name in str(error.value)


def test_a_key_defined_twice_for_one_language_is_refused(tmp_path):
    write(tmp_path, "es.json", {"hours": "a"})
    write(tmp_path, "es/more.json", {"hours": "b"})
    with pytest.raises(SettingsError, match="'hours' is defined in both"):
        ContentStore.load(tmp_path)


def test_the_app_loads_the_store_once_at_start(make_app, content_dir):
    app = make_app(CONTENT_DIR=str(content_dir))
    assert app.extensions["webhooks"].content.lookup("hours", ["es"])[0] == "es"
    assert len(make_app().extensions["webhooks"].content) == 0


def test_the_app_refuses_to_start_on_broken_content(make_app, tmp_path):
    write(tmp_path / "c", "en.json", "[")
    with pytest.raises(SettingsError, match="en.json is not valid JSON"):
        make_app(CONTENT_DIR=str(tmp_path / "c"))
    with pytest.raises(SettingsError, match="CONTENT_DIR"):
        make_app(CONTENT_DIR=str(tmp_path / "missing"))
