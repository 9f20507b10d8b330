"""Fault injection for the simulator: ``KIND[:TARGET][*COUNT]``, comma-separated.

KIND    429 (with the provider's own hint header: Catapult X-RateLimit-Reset
        in epoch ms, Plivo Retry-After), 429-bare (no hint), 500, 503,
        truncate (half the body, then the connection closes), html (an HTML
        error page with 200), empty (200, no body), garbled (audio magic
        bytes, then noise no decoder can read: the archiver fails the
        recording at its probe stage and archives it on a later run), liar (a
        WAV whose header says 2 Hz: readable, so the probe believes its 14
        hours; an MP3 is sent as it is), 404, stall (hold the response for the
        stall time), unsafe-id (a recording whose id is ``../../etc/x``),
        ratelimit (enforce the documented rate limits with 429s)
TARGET  media (default), list, get, api (list + get), or a recording id (its
        media)
COUNT   how many times it fires; unlimited when absent

Examples: ``503:list*2`` (the first two listing requests fail),
``html:rec-00ab``, ``truncate*1,stall:media*1``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

KINDS = frozenset(
    {
        "429",
        "429-bare",
        "500",
        "503",
        "truncate",
        "html",
        "empty",
        "garbled",
        "liar",
        "404",
        "stall",
        "unsafe-id",
        "ratelimit",
    }
)
SCOPES = frozenset({"media", "list", "get", "api"})


@dataclass
class Fault:
    kind: str
    target: str
    remaining: int | None  # None: unlimited

    def matches(self, scope: str, recording_id: str | None) -> bool:
        if self.target == "api":
            return scope in ("list", "get")
        if self.target in SCOPES:
            return self.target == scope
        return scope == "media" and recording_id == self.target


def parse_faults(spec: str | None) -> list[Fault]:
    """Parse a fault spec; ValueError names the bad item."""
    faults: list[Fault] = []
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        count: int | None = None
        if "*" in item:
            item, _, n = item.rpartition("*")
            if not n.isdigit() or int(n) < 1:
                raise ValueError(f"bad fault {raw!r}: the count after * must be a positive number")
            count = int(n)
        kind, _, target = item.partition(":")
        if kind not in KINDS:
            raise ValueError(f"bad fault {raw!r}: kind must be one of {', '.join(sorted(KINDS))}")
        faults.append(Fault(kind, target or "media", count))
    return faults


class FaultPlan:
    """The active faults; thread-safe, each firing counted down."""

    def __init__(self, faults: list[Fault]) -> None:
        self._faults = [f for f in faults if f.kind not in ("unsafe-id", "ratelimit")]
        self.unsafe_id = any(f.kind == "unsafe-id" for f in faults)
        self.ratelimit = any(f.kind == "ratelimit" for f in faults)
        self._lock = threading.Lock()

    def take(self, scope: str, recording_id: str | None = None) -> str | None:
        """The kind of fault to inject for this request, or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(scope, recording_id) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.kind
        return None

    def add(self, spec: str) -> None:
        """More faults, from now on (a test arms one mid-session)."""
        faults = parse_faults(spec)
        with self._lock:
            self._faults.extend(f for f in faults if f.kind not in ("unsafe-id", "ratelimit"))
