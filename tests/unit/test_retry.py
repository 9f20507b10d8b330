from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.errors import NotFoundError, TransientError
from archiver.retry import RetryPolicy, retry_call, retry_hint

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_backoff_grows_and_is_capped() -> None:
    p = RetryPolicy(base_delay=1, max_delay=8)
    assert [p.backoff(n, rng=lambda: 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert p.backoff(3, rng=lambda: 0.25) == 1.0


def test_server_hint_wins_over_backoff() -> None:
    p = RetryPolicy(base_delay=0.5)
    assert p.next_delay(1, 0.0, 7.0, rng=lambda: 0.0) == 7.0


def test_gives_up_on_attempts_and_on_total_time() -> None:
    p = RetryPolicy(max_attempts=3, max_total=10)
    assert p.next_delay(3, 0.0, None) is None
    assert p.next_delay(1, 9.5, 5.0) is None


def test_retry_hint_forms() -> None:
    assert retry_hint({"retry-after": "12"}, NOW) == 12.0
    assert retry_hint({"retry-after": "Mon, 01 Jan 2024 00:00:30 GMT"}, NOW) == 30.0
    reset_ms = str(int(NOW.timestamp() * 1000) + 2500)
    assert retry_hint({"x-ratelimit-reset": reset_ms}, NOW) == pytest.approx(2.5)
    assert retry_hint({"x-ratelimit-reset": "0"}, NOW) == 0.0  # already past
    assert retry_hint({}, NOW) is None


def test_retry_call_retries_transient_only() -> None:
    calls: list[float] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("503", retry_after=0.5)
        return "ok"

    assert retry_call(flaky, RetryPolicy(), what="x", sleep=sleeps.append, rng=lambda: 0.0) == "ok"
    assert len(calls) == 3 and sleeps == [0.5, 0.5]

    def missing() -> None:
        calls.append(1)
        raise NotFoundError("404")

    calls.clear()
    with pytest.raises(NotFoundError):
        retry_call(missing, RetryPolicy(), what="x", sleep=sleeps.append)
    assert len(calls) == 1


def test_retry_call_says_how_often_it_tried() -> None:
    def down() -> None:
        raise TransientError("HTTP 503")

    with pytest.raises(TransientError, match=r"gave up after 3 attempts"):
        retry_call(down, RetryPolicy(max_attempts=3), what="x", sleep=lambda s: None)


def test_a_stopping_run_retries_nothing_and_waits_for_nothing() -> None:
    import threading

    from archiver.errors import TransientError
    from archiver.retry import RetryPolicy, retry_call

    stop = threading.Event()
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        if len(calls) == 2:
            stop.set()  # Ctrl-C arrives during the second attempt
        raise TransientError("503")

    waited: list[float] = []
    with pytest.raises(TransientError, match="not retried: the run is stopping"):
        retry_call(fn, RetryPolicy(max_attempts=6), what="x", sleep=waited.append, rng=lambda: 0.0, stop=stop)
    assert len(calls) == 2  # the first failure was retried, the one after the stop was not
    # and a wait already begun ends when the stop comes
    stop2 = threading.Event()
    threading.Timer(0.05, stop2.set).start()
    with pytest.raises(TransientError, match="the run is stopping"):
        retry_call(
            lambda: (_ for _ in ()).throw(TransientError("503", retry_after=3600)),
            RetryPolicy(max_total=1e6),
            what="y",
            stop=stop2,
        )
