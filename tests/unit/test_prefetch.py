"""archiver.prefetch.read_ahead: order, errors in place, bounded look-ahead."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from archiver.prefetch import read_ahead


def producers(started: list[int], n: int, fail_at: int | None = None) -> list[Callable[[], Iterator[int]]]:
    def make(i: int) -> Callable[[], Iterator[int]]:
        def produce() -> Iterator[int]:
            started.append(i)
            for j in range(3):
                if i == fail_at and j == 1:
                    raise ValueError(f"listing {i} broke")
                yield 10 * i + j

        return produce

    return [make(i) for i in range(n)]


def test_items_come_in_order_one_iterator_per_producer() -> None:
    started: list[int] = []
    got = [list(items) for items in read_ahead(producers(started, 5), ahead=2, buffer=1)]
    assert got == [[10 * i + j for j in range(3)] for i in range(5)]
    assert sorted(started) == list(range(5))


def test_an_error_comes_out_where_it_happened() -> None:
    listings = read_ahead(producers([], 3, fail_at=1), ahead=3)
    assert list(next(listings)) == [0, 1, 2]
    broken = next(listings)
    assert next(broken) == 10
    with pytest.raises(ValueError, match="listing 1 broke"):
        next(broken)
    assert list(next(listings)) == [20, 21, 22]  # the others are not affected


def test_nothing_runs_ahead_before_the_first_answer_nor_after_a_stop() -> None:
    started: list[int] = []
    stop = threading.Event()
    listings = read_ahead(producers(started, 4), ahead=3, stop=stop)
    first = next(listings)
    assert next(first) == 0
    # After the first item, up to 3 listings run at once (this one and two ahead).
    assert list(first) == [1, 2]
    stop.set()
    rest = [list(items) for items in listings]
    assert len(rest) <= 2 and 3 not in started  # none started after the stop
    listings.close()
