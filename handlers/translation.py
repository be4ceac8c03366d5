"""Machine translation for both message webhooks, behind one small interface: `Translator`.

`translate_many(texts, source, target, timeout)` answers with the strings it could translate in
time, looking in this order: the translation memory (curated by the team), the cache (in process,
and in Redis when `REDIS_URL` is set), then the provider, through deep-translator.

deep-translator has no HTTP timeout and no retries, and a provider can hang. So:
- every provider call runs on one bounded thread pool per process (`TRANSLATION_CONCURRENCY`
  threads), never on the request's thread; the request waits for its own calls up to one deadline
  and goes on with what came back. Distinct strings go out concurrently, so 12 strings with 8
  threads cost two round trips;
- a call still running at the deadline is abandoned, not waited for; it keeps its thread until the
  provider (or a proxy) ends the connection, and the pool never grows, so a hung provider cannot
  pile up threads. When every thread is held by an abandoned call, new calls fail at once instead of
  queueing behind them. A late answer still lands in the cache for the next request;
- a circuit breaker stops calling a provider after `BREAKER_FAILURES` failures in a row (a missed
  deadline counts) for `BREAKER_COOLDOWN` seconds, then lets a single probe call through;
- failures are absent from the answer (the caller keeps the original text) and each call of
  `translate_many` logs at most one line saying why; never the text.

Language codes are the kit's ISO 639-1 codes ("zh", "he"); each provider maps them to its own
("zh-CN" and "iw" for Google, "zh-CN" and "es-ES" for MyMemory, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future, wait
from typing import Any, Callable, Iterable, Sequence

from .cache import SharedRedis, TTLCache

log = logging.getLogger(__name__)

# Where a provider's code table does not hold the ISO 639-1 code itself, the codes to try, in order.
CODE_ALIASES: dict[str, tuple[str, ...]] = {
    "zh": ("zh-CN", "zh-Hans", "zh-cn", "zh-hans"),
    "he": ("iw", "he-IL"),
    "jv": ("jw",),
    "nb": ("no",),
    "no": ("nb",),
    "tl": ("fil", "fil-PH"),
}
# For providers that only know regional codes (MyMemory): the region used for a bare language.
PREFERRED_REGION = {"en": "GB", "pt": "PT", "ar": "SA", "sv": "SE", "ja": "JP", "ko": "KR",
                    "hi": "IN", "zh": "CN", "he": "IL", "da": "DK", "cs": "CZ", "el": "GR",
                    "uk": "UA", "vi": "VN", "fa": "IR", "sl": "SI", "et": "EE"}


class TranslationError(Exception):
    """A provider call that did not produce a translation; `reason` is a short code for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """A short code for a failed provider call. Never the exception's message: it may quote text."""
    if isinstance(exc, TranslationError):
        return exc.reason
    name = type(exc).__name__
    try:
        from deep_translator import exceptions as dt
        import requests

        if isinstance(exc, dt.ServerException):
            codes = {v: k for k, v in dt.ServerException.errors.items()}
            status = codes.get(exc.args[0] if exc.args else None)
            return f"http_{status}" if status else "server_error"
        if isinstance(exc, dt.TooManyRequests):
            return "http_429"
        if isinstance(exc, (dt.AuthorizationException, dt.ApiKeyException)):
            return "unauthorized"
        if isinstance(exc, (dt.LanguageNotSupportedException, dt.InvalidSourceOrTargetLanguage)):
            return "unsupported_language"
        if isinstance(exc, (dt.NotValidLength, dt.NotValidPayload)):
            return "text_rejected"
        if isinstance(exc, (dt.TranslationNotFound, dt.ElementNotFoundInGetRequest)):
            return "no_translation"
        if isinstance(exc, dt.RequestError):
            return "request_failed"
        if isinstance(exc, requests.exceptions.Timeout):
            return "timeout"
        if isinstance(exc, requests.exceptions.ConnectionError):
            return "connection_failed"
        if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
            return "invalid_answer"  # not the JSON the provider documents
    except ImportError:  # pragma: no cover - deep-translator is a runtime requirement
        pass
    return f"error_{name}"


# --- providers --------------------------------------------------------------------------------

class Provider:
    """One translation service: language-code mapping and one blocking call.

    `translate` may block for ever (deep-translator sets no timeout); the `Translator` only ever
    calls it on its bounded pool. Subclass this to add a provider deep-translator lacks.
    """

    name = "provider"

    def code_for(self, language: str) -> str | None:
        """The provider's code for an ISO 639-1 code, or None when it cannot translate it."""
        return language

    def translate(self, text: str, source: str, target: str) -> str:
        raise NotImplementedError


def map_code(language: str, codes: Iterable[str] | None) -> str | None:
    """Map an ISO 639-1 code onto a provider's code table (None = the provider takes any code)."""
    if codes is None:
        return language
    table = {code.lower(): code for code in codes}
    for candidate in (language, *CODE_ALIASES.get(language, ())):
        if candidate.lower() in table:
            return table[candidate.lower()]
    region = PREFERRED_REGION.get(language, language.upper())
    if f"{language}-{region}".lower() in table:
        return table[f"{language}-{region}".lower()]
    regional = sorted(code for low, code in table.items() if low.startswith(language + "-"))
    return regional[0] if regional else None


class DeepTranslatorProvider(Provider):
    """A deep-translator class behind the `Provider` interface.

    `make(source, target)` builds the deep-translator object for one language pair. Objects that
    keep per-call state (Google, MyMemory put the text in a shared dict) are built per call
    (`reuse=False`, cheap); the others are built once per pair, on the pool, because some
    (Microsoft) make a network call in their constructor.
    """

    def __init__(self, name: str, make: Callable[[str, str], Any], codes: Iterable[str] | None,
                 *, reuse: bool, fixed: dict[str, str] | None = None) -> None:
        self.name = name
        self._make = make
        self._codes = list(codes) if codes is not None else None
        self._fixed = fixed or {}
        self._reuse = reuse
        self._instances: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def code_for(self, language: str) -> str | None:
        return self._fixed.get(language) or map_code(language, self._codes)

    def _instance(self, source: str, target: str) -> Any:
        if not self._reuse:
            return self._make(source, target)
        with self._lock:
            instance = self._instances.get((source, target))
        if instance is None:
            instance = self._make(source, target)
            with self._lock:
                self._instances.setdefault((source, target), instance)
        return instance

    def translate(self, text: str, source: str, target: str) -> str:
        result = self._instance(source, target).translate(text)
        if not isinstance(result, str) or not result.strip():
            raise TranslationError("empty_answer")
        return result


def libre_base_url(url: str) -> str:
    """deep-translator appends "translate" to the URL it is given: accept either form."""
    url = url.strip()
    if url.rstrip("/").endswith("/translate"):
        url = url.rstrip("/")[: -len("translate")]
    return url if url.endswith("/") else url + "/"


def build_provider(settings: Any) -> Provider | None:
    """The provider named by TRANSLATOR (None for "none"). Builds nothing that calls out."""
    name = settings.translator
    key = settings.translator_api_key
    if name == "none":
        return None
    from deep_translator import (DeeplTranslator, GoogleTranslator, LibreTranslator,
                                 MicrosoftTranslator, MyMemoryTranslator)
    from deep_translator import constants as dt

    if name == "google":
        return DeepTranslatorProvider(
            name, lambda s, t: GoogleTranslator(source=s, target=t),
            dt.GOOGLE_LANGUAGES_TO_CODES.values(), reuse=False)
    if name == "mymemory":
        return DeepTranslatorProvider(
            name, lambda s, t: MyMemoryTranslator(source=s, target=t),
            dt.MY_MEMORY_LANGUAGES_TO_CODES.values(), reuse=False)
    if name == "libre":
        url = libre_base_url(settings.translator_url)

        def make_libre(source: str, target: str) -> Any:
            # deep-translator refuses to start without a key, even for a self-hosted server that
            # needs none; build it with a placeholder and then send no key at all.
            translator = LibreTranslator(source=source, target=target, api_key=key or "unused",
                                         custom_url=url)
            if not key:
                translator.api_key = None
            return translator

        return DeepTranslatorProvider(name, make_libre, dt.LIBRE_LANGUAGES_TO_CODES.values(),
                                      reuse=True)
    if name == "deepl":
        free = bool(key and key.endswith(":fx"))  # DeepL's free-plan keys end in ":fx"
        return DeepTranslatorProvider(
            name, lambda s, t: DeeplTranslator(source=s, target=t, api_key=key,
                                               use_free_api=free),
            dt.DEEPL_LANGUAGE_TO_CODE.values(), reuse=True)
    if name == "microsoft":
        region = getattr(settings, "translator_region", None)

        def make_microsoft(source: str, target: str) -> Any:
            return MicrosoftTranslator(source=source, target=target, api_key=key, region=region)

        # Its code table is only known after the network call its constructor makes (on the pool,
        # under the deadline); until then, ISO 639-1 codes with Microsoft's one difference.
        return DeepTranslatorProvider(name, make_microsoft, None, reuse=True,
                                      fixed={"zh": "zh-hans"})
    raise ValueError(f"unknown translator {name!r}")


# --- circuit breaker --------------------------------------------------------------------------

class CircuitBreaker:
    """Closed → (N failures in a row) → open for `cooldown` s → half-open: one probe call.

    The probe's success closes it; its failure opens it again. Per process: each worker finds out
    for itself, which costs at most N failed calls per worker per outage.
    """

    def __init__(self, name: str, failures: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = max(1, int(failures))
        self.cooldown = float(cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self._open_until = 0.0
        self._probing = False
        self.opened = 0  # how many times it opened (stats)

    def allow(self) -> tuple[bool, bool]:
        """(may this call go out, is it the half-open probe)."""
        with self._lock:
            if self.state == "closed":
                return True, False
            if self.state == "open" and self._clock() >= self._open_until:
                self.state = "half_open"
            if self.state == "half_open" and not self._probing:
                self._probing = True
                return True, True
            return False, False

    def success(self) -> None:
        with self._lock:
            was = self.state
            self.state, self.failures, self._probing = "closed", 0, False
        if was != "closed":
            log.info("translator %s answered again: circuit closed", self.name)

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.threshold:
                reopened = self.state == "half_open"
                self.state, self._probing = "open", False
                self._open_until = self._clock() + self.cooldown
                self.opened += 1
            else:
                return
        log.warning("translator %s %s: circuit open, no calls for %.0f s", self.name,
                    "still failing" if reopened else f"failed {self.failures} times in a row",
                    self.cooldown)

    def release_probe(self) -> None:
        """The probe never ran (its deadline passed in the queue): let the next call probe."""
        with self._lock:
            self._probing = False


# --- the bounded pool -------------------------------------------------------------------------

class _Call:
    """One provider call in flight; `abandoned` once its requester stopped waiting for it."""

    __slots__ = ("text", "deadline", "probe", "finished", "abandoned", "lock")

    def __init__(self, text: str, deadline: float, probe: bool) -> None:
        self.text = text
        self.deadline = deadline
        self.probe = probe
        self.finished = False
        self.abandoned = False
        self.lock = threading.Lock()


_Work = tuple[Future, Callable[..., Any], tuple[Any, ...]]


class CallPool:
    """A fixed number of daemon threads shared by every request of the process, for blocking calls.

    Not `ThreadPoolExecutor`: its threads are joined when the interpreter exits, so a call hung on
    a silent provider would hold up a worker's shutdown. These threads are daemons, started on
    first use in each process (building the pool before gunicorn forks starts none in the master).
    `submit` returns a standard `Future`, so `concurrent.futures.wait` and `cancel` work as usual.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._queue: queue.SimpleQueue[_Work] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0   # threads waiting for work and not yet promised to a submitted call
        self.stuck = 0   # threads held by calls nobody waits for any more

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        with self._lock:
            if self._queue is None or self._pid != os.getpid():
                self._queue, self._pid = queue.SimpleQueue(), os.getpid()
                self._threads = self._idle = self.stuck = 0
            if self._idle:
                self._idle -= 1
            elif self._threads < self.size:  # threads start as work needs them, up to size
                self._threads += 1
                threading.Thread(target=self._work, args=(self._queue,), daemon=True,
                                 name=f"translate-{self._threads}").start()
            work_queue = self._queue
        future: Future = Future()
        work_queue.put((future, fn, args))
        return future

    def _work(self, work_queue: "queue.SimpleQueue[_Work]") -> None:
        while True:
            future, fn, args = work_queue.get()
            if future.set_running_or_notify_cancel():  # False: cancelled while it queued
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:
                    future.set_exception(exc)
            with self._lock:
                if work_queue is not self._queue:
                    return  # a pool of another process (after a fork) or a reset
                self._idle += 1

    @property
    def jammed(self) -> bool:
        return self.stuck >= self.size

    def hold(self, delta: int) -> None:
        with self._lock:
            self.stuck += delta


# --- translation memory and cache -------------------------------------------------------------

def memory_key(text: str) -> str:
    """Memory entries match regardless of case and spacing: "Track my  order" = "track my order"."""
    return " ".join(text.split()).casefold()


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
        from .settings import SettingsError

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
            entries.update({memory_key(k): v for k, v in data.items() if k.strip()})
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
        if missing and self.redis is not None:
            keys = [self._redis_key(provider, source, target, text) for text in missing]
            values = self.redis.run(lambda client: client.mget(keys), None) or []
            for text, value in zip(missing, values):
                if value is not None:
                    found[text] = value
                    self.local.set(self._digest(provider, source, target, text), value)
        return found

    def put(self, provider: str, source: str, target: str, text: str, translation: str) -> None:
        self.local.set(self._digest(provider, source, target, text), translation)
        if self.redis is not None:
            key = self._redis_key(provider, source, target, text)
            ttl = max(1, int(self.ttl))
            self.redis.run(lambda client: client.set(key, translation, ex=ttl), None)


# --- the translator ---------------------------------------------------------------------------

class Translator:
    """The one translation interface both webhooks use; always present, TRANSLATOR=none too."""

    def __init__(self, provider: Provider | None, *, memory: TranslationMemory | None = None,
                 cache: TranslationCache | None = None, concurrency: int = 8,
                 breaker_failures: int = 5, breaker_cooldown: float = 30.0) -> None:
        self.provider = provider
        self.name = provider.name if provider is not None else "none"
        self.memory = memory or TranslationMemory()
        self.cache = cache or TranslationCache(0, 1.0)
        self.pool = CallPool(concurrency)
        self.breaker = CircuitBreaker(self.name, breaker_failures, breaker_cooldown)
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def _count(self, **counts: int) -> None:
        with self._stats_lock:
            self._stats.update(counts)

    def stats(self) -> dict[str, Any]:
        """Counters since start (per process): calls, failures, timeouts, cache and memory hits."""
        with self._stats_lock:
            stats: dict[str, Any] = dict(self._stats)
        stats.update(provider=self.name, breaker=self.breaker.state, stuck_threads=self.pool.stuck)
        return stats

    def can_translate(self, language: str) -> bool:
        """Whether the provider has a code for this language (memory and cache aside)."""
        return self.provider is not None and self.provider.code_for(language) is not None

    def translate(self, text: str, source: str, target: str, timeout: float) -> str | None:
        """One string; None when it was not translated (the caller keeps the original)."""
        return self.translate_many([text], source, target, timeout).get(text)

    def translate_many(self, texts: Sequence[str], source: str, target: str,
                       timeout: float) -> dict[str, str]:
        """Translate distinct strings under one deadline; answer only those translated in time.

        Memory first, then the cache, then the provider (concurrently, on the shared pool). A string
        that fails or misses the deadline is absent; one log line says how many and why.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if not source or not target or source == target:
            return {}
        wanted = [t for t in dict.fromkeys(texts) if isinstance(t, str) and t.strip()]
        if not wanted:
            return {}
        result = self.memory.lookup(wanted, source, target)
        if result:
            self._count(memory_hits=len(result))
        todo = [t for t in wanted if t not in result]
        if todo:
            cached = self.cache.get_many(self.name, source, target, todo)
            if cached:
                self._count(cache_hits=len(cached))
                result.update(cached)
                todo = [t for t in todo if t not in cached]
        if todo:
            failures = self._call_provider(todo, source, target, deadline, result)
            if failures:
                # While the circuit is open every request would say so; the breaker said it once.
                level = logging.DEBUG if set(failures) == {"circuit_open"} else logging.WARNING
                log.log(level, "translation %s->%s via %s: %d of %d strings left untranslated (%s)",
                        source, target, self.name, sum(failures.values()), len(wanted),
                        ", ".join(f"{why}={n}" for why, n in sorted(failures.items())))
        return result

    def _call_provider(self, texts: list[str], source: str, target: str, deadline: float,
                       result: dict[str, str]) -> Counter[str]:
        """Fan the provider calls out on the pool; fill `result`; return the failure reasons."""
        failures: Counter[str] = Counter()
        provider = self.provider
        if provider is None:
            return failures  # TRANSLATOR=none: memory and cache only, and that is no failure
        src, tgt = provider.code_for(source), provider.code_for(target)
        if src is None or tgt is None:
            failures["unsupported_language"] += len(texts)
            return failures
        calls: dict[Future, _Call] = {}
        for text in texts:
            if self.pool.jammed:
                failures["all_threads_stuck"] += 1
                continue
            allowed, probe = self.breaker.allow()
            if not allowed:
                failures["circuit_open"] += 1
                continue
            call = _Call(text, deadline, probe)
            calls[self.pool.submit(self._run, provider, call, source, target, src, tgt)] = call
        if not calls:
            return failures
        done, pending = wait(calls, timeout=max(0.0, deadline - time.monotonic()))
        for future in done:
            try:
                result[calls[future].text] = future.result()
            except Exception as exc:
                failures[failure_reason(exc)] += 1
        for future in pending:
            call = calls[future]
            if future.cancel():  # never started: the deadline passed while it queued
                failures["deadline_in_queue"] += 1
                if call.probe:
                    self.breaker.release_probe()
                continue
            with call.lock:
                if call.finished:  # finished between wait() and here
                    late = True
                else:
                    call.abandoned, late = True, False
            if late:
                try:
                    result[call.text] = future.result()
                except Exception as exc:
                    failures[failure_reason(exc)] += 1
                continue
            failures["timeout"] += 1
            self._count(timeouts=1)
            self.pool.hold(+1)
            self.breaker.failure()
        return failures

    def _run(self, provider: Provider, call: _Call, source: str, target: str,
             src: str, tgt: str) -> str:
        """On a pool thread: one provider call, its breaker outcome, and caching its answer."""
        if time.monotonic() >= call.deadline:
            if call.probe:
                self.breaker.release_probe()
            raise TranslationError("deadline_in_queue")
        self._count(calls=1)
        error: BaseException | None = None
        translation = None
        try:
            translation = provider.translate(call.text, src, tgt)
        except BaseException as exc:  # deep-translator's exceptions share no base class
            error = exc
        with call.lock:
            call.finished = True
            abandoned = call.abandoned
        if abandoned:
            self.pool.hold(-1)  # its requester already counted the timeout against the breaker
        elif error is None:
            self.breaker.success()
        else:
            self._count(failures=1)
            self.breaker.failure()
        if error is not None:
            raise error
        assert translation is not None
        self.cache.put(self.name, source, target, call.text, translation)
        return translation


def build_translator(settings: Any, redis: SharedRedis | None = None) -> Translator:
    """The app's translator, built once before the fork; nothing here calls the provider."""
    provider = build_provider(settings)
    translator = Translator(
        provider,
        memory=TranslationMemory.load(settings.translation_memory),
        cache=TranslationCache(settings.translation_cache_size, settings.translation_cache_ttl,
                               redis),
        concurrency=settings.translation_concurrency,
        breaker_failures=settings.breaker_failures,
        breaker_cooldown=settings.breaker_cooldown,
    )
    if provider is not None:
        missing = [code for code in settings.supported_languages
                   if code != settings.assistant_language and not translator.can_translate(code)]
        if missing:
            log.warning("TRANSLATOR=%s has no code for %s: messages in these languages reach the "
                        "assistant untranslated (translation memory aside); narrow "
                        "SUPPORTED_LANGUAGES to answer them with UNSUPPORTED_LANGUAGE_REPLY",
                        provider.name, ", ".join(missing))
    return translator
