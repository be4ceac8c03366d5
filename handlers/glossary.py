"""TRANSLATION_GLOSSARY: the words a provider must never translate, or must translate one way.

The file is one JSON object, read and checked once at start-up (a malformed file stops the start
with a message naming TRANSLATION_GLOSSARY):

    {"keep": ["SmartSaver Plus", "watsonx"],
     "terms": {"es": {"savings account": "cuenta de ahorro"}}}

- `keep`: terms that come back verbatim, in both directions.
- `terms`: keyed by the customer's language (a code of LANGUAGES, not ASSISTANT_LANGUAGE); each
  maps a phrase in the assistant's language to its fixed translation in that language. The reply
  (assistant -> customer) has the phrase replaced by the translation; the customer's input
  (customer -> assistant) has the translation replaced by the phrase. Where two phrases share a
  translation, the input gets the first one listed.

Every term is masked (`handlers.masking`): the provider sees a `{n}` token instead, whatever the
direction. Matching ignores case and the amount of whitespace between words, and takes whole
words only ("savings accounts" is not "savings account"); the longest term wins; a fixed
translation takes a capital when the term was found with one.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .masking import DEFAULT_RULES, MAX_TERM_CHARS, MaskRules, build_rules
from .settings import SettingsError

# A glossary is loaded into one pattern per direction; these caps keep each pattern small.
MAX_GLOSSARY_BYTES = 1024 * 1024
MAX_GLOSSARY_TERMS = 5000


@dataclass(frozen=True)
class Glossary:
    """The glossary's masking rules for each direction of translation (empty: the built-in
    spans only). Built once at start-up; `rules` only looks one up."""

    pairs: Mapping[tuple[str, str], MaskRules] = field(default_factory=dict)
    # The kept terms alone, for a pair the glossary has no terms for.
    keep: MaskRules = DEFAULT_RULES

    def rules(self, source: str, target: str) -> MaskRules:
        """What to mask in a text translated from `source` into `target`."""
        return self.pairs.get((source, target), self.keep)

    @classmethod
    def load(cls, path: str | None, languages: tuple[str, ...],
             assistant_language: str) -> "Glossary":
        """Read and check the file at `path` (None: an empty glossary)."""
        if not path:
            return cls()
        keep, terms = _read(path, languages, assistant_language)
        pairs: dict[tuple[str, str], MaskRules] = {}
        for language, table in terms.items():
            reverse: dict[str, str | None] = {}
            for phrase, translation in table.items():
                reverse.setdefault(translation, phrase)  # the first phrase listed wins
            # build_rules takes the first of terms equal but for case: a fixed term wins over
            # the same term kept.
            pairs[(assistant_language, language)] = build_rules(_with_kept(table, keep))
            pairs[(language, assistant_language)] = build_rules(_with_kept(reverse, keep))
        return cls(pairs, build_rules(dict.fromkeys(keep)))


def _with_kept(fixed: Mapping[str, str | None], keep: list[str]) -> dict[str, str | None]:
    rules = dict(fixed)
    for term in keep:
        rules.setdefault(term, None)
    return rules


def _fail(problem: str) -> SettingsError:
    return SettingsError(f"TRANSLATION_GLOSSARY: {problem}")


def _term(value: Any, where: str) -> str:
    if not isinstance(value, str) or not any(char.isalnum() for char in value):
        raise _fail(f"{where}: each term is a string holding a letter or digit")
    if len(value) > MAX_TERM_CHARS:
        raise _fail(f"{where}: a term is longer than {MAX_TERM_CHARS} characters")
    return " ".join(value.split())


def _read(path: str, languages: tuple[str, ...],
          assistant_language: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The file's kept terms and fixed terms by language, or SettingsError saying what is wrong
    (never quoting the file: it may hold what the team keeps private)."""
    file = pathlib.Path(path)
    try:
        if file.stat().st_size > MAX_GLOSSARY_BYTES:
            raise _fail(f"{file.name} is larger than {MAX_GLOSSARY_BYTES // 1024} KiB")
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"{path!r} cannot be read ({type(exc).__name__})") from None
    except ValueError as exc:
        raise _fail(f"{file.name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or set(data) - {"keep", "terms"}:
        raise _fail(f"{file.name} must be one JSON object with \"keep\" (a list of terms) "
                    "and \"terms\" (language -> {phrase: translation})")
    keep = data.get("keep", [])
    terms = data.get("terms", {})
    if not isinstance(keep, list) or not isinstance(terms, dict):
        raise _fail("\"keep\" is a list of terms and \"terms\" an object by language")
    kept = [_term(value, "keep") for value in keep]
    fixed: dict[str, dict[str, str]] = {}
    for code, table in terms.items():
        language = code.strip().lower() if isinstance(code, str) else code
        if language not in languages or language == assistant_language:
            raise _fail(f"terms: {str(code)[:20]!r} is not a customer's language (a code of "
                        "LANGUAGES other than ASSISTANT_LANGUAGE)")
        if not isinstance(table, dict):
            raise _fail(f"terms.{language} is an object of phrase -> translation")
        where = f"terms.{language}"
        entries = fixed.setdefault(language, {})
        for phrase, translation in table.items():
            entries[_term(phrase, where)] = _term(translation, where)
    count = len(kept) + sum(len(entries) for entries in fixed.values())
    if count > MAX_GLOSSARY_TERMS:
        raise _fail(f"{count} terms; at most {MAX_GLOSSARY_TERMS}")
    return kept, fixed


def rules_for(glossary: Glossary | None, source: str, target: str) -> MaskRules:
    """The masking rules for a translation from `source` into `target` (`services.glossary`,
    None without TRANSLATION_GLOSSARY: the built-in spans)."""
    return glossary.rules(source, target) if glossary is not None else DEFAULT_RULES
