"""`Translator`: the translation memory, then the cache, then the provider on the bounded pool
under one deadline and behind the circuit breaker (see the package's docstring)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future, wait
from typing import Any, Sequence

from .. import metrics
from ..cache import SharedRedis
from ..settings import Settings
from .clients import build_client
from .errors import TranslationError, failure_reason, is_outage
from .memory import TranslationCache, TranslationMemory
from .providers import Provider
from .resilience import Call, CallPool, CircuitBreaker

log = logging.getLogger("handlers.translation")

class Translator:
    """The one translation interface both webhooks use; always present, TRANSLATOR=none too."""

    def __init__(self, provider: Provider | None, *, memory: TranslationMemory,
                 cache: TranslationCache, concurrency: int, breaker_failures: int,
                 breaker_cooldown: float) -> None:
        self.provider = provider
        self.name = provider.name if provider is not None else "none"
        self.memory = memory
        self.cache = cache
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

    def translate(self, text: str, source: str, target: str, timeout: float, *,
                  notes: dict[str, Any] | None = None) -> str | None:
        """One string; None when it was not translated (the caller keeps the original)."""
        return self.translate_many([text], source, target, timeout, notes=notes).get(text)

    def translate_many(self, texts: Sequence[str], source: str, target: str,
                       timeout: float, *, notes: dict[str, Any] | None = None) -> dict[str, str]:
        """Translate distinct strings under one deadline; answer only those translated in time.

        Memory first, then the cache, then the provider on the shared pool: one request per
        `batch_size` strings where the provider takes a list, else one call per string,
        concurrently. A string that fails or misses the deadline is absent; one log line says how
        many and why. `notes` (the request's log line, turn.notes) gets the breaker's state and
        the count of stuck threads when they matter.
        """
        try:
            return self._translate_many(texts, source, target, timeout)
        finally:
            metrics.stuck_threads(self.name, self.pool.stuck)
            if notes is not None:
                if self.breaker.state != "closed":
                    notes["translator_breaker"] = self.breaker.state
                if self.pool.stuck:
                    notes["translator_stuck_threads"] = self.pool.stuck

    def _translate_many(self, texts: Sequence[str], source: str, target: str,
                        timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + max(0.0, timeout)
        if not source or not target or source == target:
            return {}
        wanted = [t for t in dict.fromkeys(texts) if isinstance(t, str) and t.strip()]
        if not wanted:
            return {}
        result = self.memory.lookup(wanted, source, target)
        if result:
            self._count(memory_hits=len(result))
            metrics.strings_served(self.name, "memory", len(result))
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
                metrics.strings_failed(self.name, failures)
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
        size = max(1, provider.batch_size)
        batches = [texts[start:start + size] for start in range(0, len(texts), size)]
        refused = self._send(provider, batches, source, target, src, tgt, deadline, result,
                             failures)
        if refused and self.breaker.state == "closed":
            # The provider refused a batch (an HTTP error): one string it cannot take must not
            # cost the reply's other strings, so each goes again alone, in what time is left.
            for batch in refused:
                failures[batch[1]] -= len(batch[0])
            singles = [[text] for batch, _ in refused for text in batch]
            self._send(provider, singles, source, target, src, tgt, deadline, result, failures)
        return +failures

    def _send(self, provider: Provider, batches: list[list[str]], source: str, target: str,
              src: str, tgt: str, deadline: float, result: dict[str, str],
              failures: Counter[str]) -> list[tuple[list[str], str]]:
        """One provider call per batch on the pool, waited for up to the deadline; fill `result`
        and `failures`; return the batches of several strings refused with an HTTP error."""
        calls: dict[Future, Call] = {}
        refused: list[tuple[list[str], str]] = []
        for batch in batches:
            if self.pool.jammed:
                failures["all_threads_stuck"] += len(batch)
                continue
            allowed, probe = self.breaker.allow()
            if not allowed:
                failures["circuit_open"] += len(batch)
                metrics.provider_call(self.name, "breaker_open")
                continue
            call = Call(batch, deadline, probe)
            calls[self.pool.submit(self._run, provider, call, source, target, src, tgt)] = call
        if not calls:
            return refused
        done, pending = wait(calls, timeout=max(0.0, deadline - time.monotonic()))
        for future in done:
            reason = self._collect(future, calls[future], result, failures)
            if reason and reason.startswith("http_") and len(calls[future].texts) > 1:
                refused.append((calls[future].texts, reason))
        for future in pending:
            call = calls[future]
            if future.cancel():  # never started: the deadline passed while it queued
                failures["deadline_in_queue"] += len(call.texts)
                if call.probe:
                    self.breaker.release_probe()
                continue
            with call.lock:
                if call.finished:  # finished between wait() and here
                    late = True
                else:
                    call.abandoned, late = True, False
            if late:
                self._collect(future, call, result, failures)
                continue
            failures["timeout"] += len(call.texts)
            self._count(timeouts=1)
            metrics.provider_call(self.name, "timeout")
            self.pool.hold(+1)
            self.breaker.failure()
        return refused

    @staticmethod
    def _collect(future: Future, call: Call, result: dict[str, str],
                 failures: Counter[str]) -> str | None:
        """Take a finished call's answer into `result`; the reason it failed, if it did."""
        try:
            answer = future.result()
        except Exception as exc:
            reason = failure_reason(exc)
            failures[reason] += len(call.texts)
            return reason
        result.update(answer)
        if len(answer) < len(call.texts):
            failures["rejected_answer"] += len(call.texts) - len(answer)
        return None

    def _run(self, provider: Provider, call: Call, source: str, target: str,
             src: str, tgt: str) -> dict[str, str]:
        """On a pool thread: one provider call, its breaker outcome, and caching its answers."""
        if time.monotonic() >= call.deadline:
            if call.probe:
                self.breaker.release_probe()
            raise TranslationError("deadline_in_queue")
        self._count(calls=1)
        error: BaseException | None = None
        translations: list[str | None] = []
        started = time.monotonic()
        try:
            translations = provider.translate_batch(call.texts, src, tgt, call.deadline)
        except BaseException as exc:  # a provider of the team's may raise anything
            error = exc
        metrics.provider_latency(self.name, time.monotonic() - started)
        with call.lock:
            call.finished = True
            abandoned = call.abandoned
        if abandoned:
            self.pool.hold(-1)  # its requester already counted the timeout against the breaker
        elif error is None:
            self.breaker.success()
            metrics.provider_call(self.name, "ok")
        else:
            reason = failure_reason(error)
            # The client's read timeout can end the call just before the requester's wait does:
            # it is the same timeout, counted once either way.
            self._count(**({"timeouts": 1} if reason == "timeout" else {"failures": 1}))
            metrics.provider_call(self.name, "timeout" if reason == "timeout" else "error")
            if is_outage(reason):
                self.breaker.failure()
            elif call.probe:
                self.breaker.success()  # it answered: up, whatever it thought of the text
        if error is not None:
            raise error
        answer = {}
        for text, translation in zip(call.texts, translations):
            if isinstance(translation, str) and translation.strip():
                answer[text] = translation
                self.cache.put(self.name, source, target, text, translation)
        metrics.strings_served(self.name, "provider", len(answer))
        return answer


def build_translator(settings: Settings, redis: SharedRedis | None = None) -> Translator:
    """The app's translator, built once before the fork; nothing here calls the provider."""
    provider = build_client(settings) if settings.translator != "none" else None
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
