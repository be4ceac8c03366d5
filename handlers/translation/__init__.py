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

The modules: `providers` (deep-translator and each provider's language codes), `resilience` (the
pool, the deadline, the breaker), `memory` (translation memory and cache) and `translator`.
"""

from .providers import Provider, TranslationError, map_code
from .resilience import CircuitBreaker
from .translator import Translator, build_translator

__all__ = ["CircuitBreaker", "Provider", "TranslationError", "Translator", "build_translator",
           "map_code"]
