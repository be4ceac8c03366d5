"""Why a provider call produced no translation, as a short code for the log and the breaker."""

from __future__ import annotations

# Reasons that say something about the text or the configuration, not about whether the provider
# is up: they do not count against the circuit breaker (timeouts, refused connections, 5xx and
# 429 do).
NOT_AN_OUTAGE = frozenset({"unsupported_language", "text_rejected", "no_translation",
                           "empty_answer", "rejected_answer", "http_400", "http_413",
                           "http_414", "deadline_in_queue"})


class TranslationError(Exception):
    """A provider call that did not produce a translation; `reason` is a short code for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def failure_reason(exc: BaseException) -> str:
    """A short code for a failed provider call. Never the exception's message: it may quote text."""
    if isinstance(exc, TranslationError):
        return exc.reason
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection_failed"
    if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError, IndexError)):
        return "invalid_answer"  # not the JSON the provider documents
    return f"error_{type(exc).__name__}"


def is_outage(reason: str) -> bool:
    """Whether a failure says the provider is down or overloaded (it counts for the breaker)."""
    return reason not in NOT_AN_OUTAGE
