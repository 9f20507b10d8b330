"""Reading ahead: run the next few listings on background threads while the current one is
consumed, each into a bounded queue, and hand them over in order.

The provider clients pace every request themselves (thread-safe pacers, shared between
processes), so listings run ahead never exceed a provider's limit; they only stop waiting
on downloads. Memory is bounded by ``ahead`` listings of at most ``buffer`` items each.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()
_POLL = 0.2  # seconds a producer waits on a full queue before checking for cancellation


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Listing(Generic[T]):
    """One producer on its own daemon thread, filling a bounded queue."""

    def __init__(self, produce: Callable[[], Iterable[T]], buffer: int, cancel: threading.Event) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=buffer)
        self._cancel = cancel
        self._thread = threading.Thread(target=self._run, args=(produce,), name="list-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Callable[[], Iterable[T]]) -> None:
        try:
            for item in produce():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised where it happened
            self._put(_Failed(exc))
            return
        self._put(_END)

    def items(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]


def read_ahead(
    producers: Iterable[Callable[[], Iterable[T]]],
    *,
    ahead: int = 2,
    buffer: int = 200,
    stop: threading.Event | None = None,
) -> Iterator[Iterator[T]]:
    """The items of each producer, in order, as one iterator per producer; up to ``ahead``
    producers run at once, the first of them being the one consumed; the others start once a
    listing has delivered its first item (so a refused request is not made ``ahead`` times).
    An exception a producer raises comes out of its iterator at the place it happened.
    Closing this generator (or setting ``stop``) starts no further producer; running ones
    stop at their next item once this generator is closed (until then they fill at most
    ``buffer`` items each)."""
    cancel = threading.Event()
    pending = iter(producers)
    running: list[_Listing[T]] = []

    def top_up(limit: int) -> None:
        while len(running) < limit and not cancel.is_set() and not (stop and stop.is_set()):
            produce = next(pending, None)
            if produce is None:
                return
            running.append(_Listing(produce, buffer, cancel))

    def reading(listing: _Listing[T]) -> Iterator[T]:
        first = True
        for item in listing.items():
            if first:  # the provider answered: only now run ahead (a refused token is one request)
                top_up(ahead - 1)  # this one and ahead - 1 more
                first = False
            yield item

    try:
        while True:
            if not running:
                top_up(1)
            if not running:
                return
            yield reading(running.pop(0))
    finally:
        cancel.set()
