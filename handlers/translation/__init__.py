"""Machine translation for both message webhooks, behind one small interface: `Translator`.

`translate_many(texts, source, target, timeout)` answers with the strings it could translate in
time, looking in this order: the translation memory (curated by the team), the cache (in process,
and in Redis when `REDIS_URL` is set), then the provider.

The transport (docs/translation.md says what reaches each provider):
- libre, deepl, microsoft, google with a key and llm go through the kit's own clients
  (`clients`): one pooled keep-alive `requests.Session` per provider per worker process
  (`transport`), a reply's strings in one request where the provider takes a list, text and keys
  in the body or headers, never in a URL, and HTTP timeouts taken from what is left of the
  deadline, so a call never holds a thread longer than TRANSLATION_TIMEOUT + 1 s;
- mymemory and keyless google go through deep-translator, one string per call, concurrently.
  deep-translator calls `requests.get` itself with no timeout and offers no public way to pass a
  session or a timeout, so only the pool's deadline bounds those calls (below).

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

The modules: `providers` (the interface, language codes, deep-translator), `clients` and
`transport` (the kit's HTTP clients), `errors`, `resilience` (the pool, the deadline, the
breaker), `memory` (translation memory and cache) and `translator`.
"""

from .providers import Provider, TranslationError, map_code
from .resilience import CircuitBreaker
from .translator import Translator, build_translator

__all__ = ["CircuitBreaker", "Provider", "TranslationError", "Translator", "build_translator",
           "map_code"]
