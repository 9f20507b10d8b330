"""Backoff policy (pure) and the one place that retries.

Only :class:`~archiver.errors.TransientError` is retried. A server's hint (``Retry-After``,
Catapult's ``X-RateLimit-Reset``) replaces the computed delay; otherwise the delay is
exponential with full jitter. Attempts and total time are both bounded.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from archiver.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient fault."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total: float = 180.0

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential delay before retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling * rng()

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        hint: float | None,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        A server hint is honoured (plus a little jitter, so many workers do not return at
        once) as long as it fits in what is left of ``max_total``.
        """
        if attempt >= self.max_attempts:
            return None
        if hint is not None and hint >= 0:
            delay = hint + min(1.0, self.base_delay) * rng()
        else:
            delay = self.backoff(attempt, rng)
        if elapsed + delay > self.max_total:
            return None
        return delay


def retry_hint(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` (seconds or HTTP date), else
    ``X-RateLimit-Reset`` (epoch milliseconds, Catapult). None when neither is usable."""
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, (when - now).total_seconds())
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            reset_ms = float(reset)
        except ValueError:
            return None
        return max(0.0, reset_ms / 1000.0 - now.timestamp())
    return None


def retry_call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    stop: threading.Event | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying TransientError as ``policy`` allows.

    The last TransientError is re-raised, its message saying how many attempts were made. Once
    ``stop`` is set (the run is stopping: Ctrl-C) nothing is retried any more, and a wait for
    the next attempt ends at once.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except TransientError as exc:
            delay = policy.next_delay(attempt, clock() - start, exc.retry_after, rng)
            if stop is not None and stop.is_set():
                exc.args = (f"{exc} (not retried: the run is stopping)",)
                raise
            if delay is None:
                exc.args = (f"{exc} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})",)
                raise
            log.info("retrying %s in %.1fs after: %s", what, delay, exc)
            if stop is not None:
                if stop.wait(delay):
                    exc.args = (f"{exc} (not retried: the run is stopping)",)
                    raise
            else:
                sleep(delay)
