"""Where a translation may already be: the translation memory (curated by the team, wins over
everything) and the cache (in process, and in Redis when `REDIS_URL` is set)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Iterable, Sequence

from .. import metrics
from ..cache import SharedRedis, TTLCache
from ..masking import TOKEN, mask
from ..settings import SettingsError

def memory_key(text: str) -> str:
    """Memory entries match regardless of case and spacing: "Track my  order" = "track my order"."""
    return " ".join(text.split()).casefold()


def memory_entry(source: str, translation: str) -> tuple[str, str]:
    """An entry as the translator will look it up: in masked form, since what it is asked for is
    masked (numbers, URLs and placeholders as `{n}` tokens). "Press 1 for sales" -> "Pulse 1
    para ventas" is kept as "press {0} for sales" -> "Pulse {0} para ventas", so it still
    matches (and "Press 2 ..." matches it too). An entry whose two sides do not protect the same
    spans is kept as written."""
    masked_source, masked_target = mask(source), mask(translation)
    if not masked_source.spans or sorted(masked_source.spans) != sorted(masked_target.spans):
        return memory_key(source), translation
    unused: list[str | None] = list(masked_source.spans)
    order = []   # for each token of the translation, the number of the same span in the source
    for span in masked_target.spans:
        order.append(unused.index(span))   # its first occurrence not yet taken
        unused[order[-1]] = None
    renumbered = TOKEN.sub(lambda match: "{%d}" % order[int(match.group(1))], masked_target.text)
    return memory_key(masked_source.text), masked_target.lead + renumbered + masked_target.trail


class TranslationMemory:
    """Curated translations that win over machine translation.

    A folder of JSON files named `<source>-<target>.json` (ISO 639-1 codes, e.g. `es-en.json`),
    each one object mapping a source text to its translation. Loaded once at start; a malformed file
    stops the start-up with a message naming it.
    """

    def __init__(self, pairs: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.pairs = pairs or {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.pairs.values())

    @classmethod
    def load(cls, folder: str | None) -> "TranslationMemory":
        if not folder:
            return cls()
        pairs: dict[tuple[str, str], dict[str, str]] = {}
        for path in sorted(pathlib.Path(folder).glob("*.json")):
            source, _, target = path.stem.lower().partition("-")
            if not source or not target or "-" in target:
                raise SettingsError(f"TRANSLATION_MEMORY: {path.name} is not named "
                                    "<source>-<target>.json (e.g. es-en.json)")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise SettingsError(f"TRANSLATION_MEMORY: {path.name} is not valid JSON "
                                    f"({type(exc).__name__})") from None
            if not isinstance(data, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and v.strip()
                    for k, v in data.items()):
                raise SettingsError(f"TRANSLATION_MEMORY: {path.name} must be one JSON object "
                                    "of source text to non-empty translated text")
            entries = pairs.setdefault((source, target), {})
            entries.update(memory_entry(k, v) for k, v in data.items() if k.strip())
        return cls(pairs)

    def lookup(self, texts: Iterable[str], source: str, target: str) -> dict[str, str]:
        entries = self.pairs.get((source, target))
        if not entries:
            return {}
        found = {}
        for text in texts:
            hit = entries.get(memory_key(text))
            if hit is not None:
                found[text] = hit
        return found


class TranslationCache:
    """Translations by (provider, source, target, text): in-process LRU+TTL, then Redis if set.

    Keys, in process and in Redis, are a hash of the four parts (the text never appears in a key,
    and an entry costs the translation's size, not the text's twice); values are the
    translations, with the same TTL.
    """

    def __init__(self, size: int, ttl: float, redis: SharedRedis | None = None) -> None:
        self.local: TTLCache[str] = TTLCache(size, ttl)
        self.ttl = ttl
        self.redis = redis

    @staticmethod
    def _digest(provider: str, source: str, target: str, text: str) -> str:
        parts = f"{provider}\0{source}\0{target}\0{text}"
        return hashlib.sha256(parts.encode("utf-8", "surrogatepass")).hexdigest()[:40]

    def _redis_key(self, provider: str, source: str, target: str, text: str) -> str:
        assert self.redis is not None
        return self.redis.key("tr", self._digest(provider, source, target, text))

    def get_many(self, provider: str, source: str, target: str,
                 texts: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        missing = []
        for text in texts:
            hit = self.local.get(self._digest(provider, source, target, text))
            if hit is None:
                missing.append(text)
            else:
                found[text] = hit
        metrics.strings_served(provider, "cache", len(found))
        if missing and self.redis is not None:
            keys = [self._redis_key(provider, source, target, text) for text in missing]
            values = self.redis.run(lambda client: client.mget(keys), None) or []
            shared = 0
            for text, value in zip(missing, values):
                if value is not None:
                    found[text] = value
                    shared += 1
                    self.local.set(self._digest(provider, source, target, text), value)
            metrics.strings_served(provider, "redis", shared)
        return found

    def put(self, provider: str, source: str, target: str, text: str, translation: str) -> None:
        self.local.set(self._digest(provider, source, target, text), translation)
        if self.redis is not None:
            key = self._redis_key(provider, source, target, text)
            ttl = max(1, int(self.ttl))
            self.redis.run(lambda client: client.set(key, translation, ex=ttl), None)
