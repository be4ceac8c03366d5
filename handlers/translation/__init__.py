"""Machine translation for both message webhooks, behind one small interface: `Translator`.

`translate_many(texts, source, target, timeout)` answers with the strings it could translate in
time, looking in this order: the translation memory (curated by the team), the cache (in process,
and in Redis when `REDIS_URL` is set), then the provider.

The transport (docs/translation.md says what reaches each provider): every provider goes through
the kit's own clients (`clients`) on one pooled keep-alive `requests.Session` per provider per
worker process (`transport`), with HTTP timeouts taken from what is left of the deadline, so a
call never holds a thread longer than TRANSLATION_TIMEOUT + 1 s. Providers that take a list get a
reply's strings in one request, text and keys in the body or headers, never in a URL; the two
free endpoints (mymemory, keyless google) take one string per GET, concurrently, and no key.
deep-translator supplies their language tables (its own HTTP has no timeout and no session).

What keeps a slow provider from holding up a request:
- every provider call runs on one bounded thread pool per process (`TRANSLATION_CONCURRENCY`
  threads), never on the request's thread; the request waits for its own calls up to one deadline
  and goes on with what came back;
- a call still running at the deadline is abandoned, not waited for; it keeps its thread until it
  ends (the kit's clients: within 1 s), and the pool never grows. When every thread is held by an
  abandoned call, new calls fail at once instead of queueing behind them;
- a circuit breaker stops calling a provider after `BREAKER_FAILURES` outages in a row (timeouts,
  refused connections, 5xx, 429) for `BREAKER_COOLDOWN` seconds, then lets one probe call through
  at a time; its answer closes the circuit;
- failures are absent from the answer (the caller keeps the original text) and each call of
  `translate_many` logs at most one line saying why; never the text.

The modules: `providers` (the interface, language codes), `clients` and
`transport` (the kit's HTTP clients), `errors`, `resilience` (the pool, the deadline, the
breaker), `memory` (translation memory and cache) and `translator`.
"""

from .errors import TranslationError
from .providers import Provider, map_code
from .resilience import CircuitBreaker
from .translator import Translator, build_translator

__all__ = ["CircuitBreaker", "Provider", "TranslationError", "Translator", "build_translator",
           "map_code"]
