from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archiver.models import protection_for
from archiver.providers.http import Pacer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """Time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_pacer_spaces_calls() -> None:
    t = FakeClock()
    pacer = Pacer(2.0, clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        pacer.wait()
    assert t.sleeps == [0.5, 0.5, 0.5]
    t.now += 10  # idle time is not saved up into a burst
    pacer.wait()
    pacer.wait()
    assert t.sleeps[-1] == 0.5 and len(t.sleeps) == 4


def test_retention_counts_from_the_call_start() -> None:
    started = datetime(2025, 6, 1, 12, tzinfo=UTC)
    p = protection_for(started, "COMPLIANCE", 365, True, NOW)
    assert p is not None and p.retain_until == started + timedelta(days=365) and p.legal_hold
    assert p.to_json()["object_lock_mode"] == "COMPLIANCE" and p.note is None


def test_retention_already_past_is_dropped_and_said() -> None:
    p = protection_for(datetime(2024, 1, 1, tzinfo=UTC), "GOVERNANCE", 30, False, NOW)
    assert p is not None and p.retain_until is None and "had passed" in (p.note or "")
    assert p.to_json()["object_lock_mode"] is None


def test_no_protection_asked() -> None:
    assert protection_for(NOW, None, None, False, NOW) is None
    hold_only = protection_for(NOW, None, None, True, NOW)
    assert hold_only is not None and hold_only.legal_hold and hold_only.retain_until is None
