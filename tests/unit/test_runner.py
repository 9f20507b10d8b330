"""run_batch's driver rules, with plain items and no I/O."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from archiver.errors import CatalogUnavailable
from archiver.models import Outcome
from archiver.runner import GroupTracker, RunResult, first_seen, run_batch


@dataclass(frozen=True)
class Item:
    recording_id: str


def result() -> RunResult:
    return RunResult(command="t", provider="p", account="a", dest="d")


def test_first_seen_keeps_the_first_of_each_id_in_order() -> None:
    items = [Item("b"), Item("a"), Item("b"), Outcome("a", "failed"), Item("c")]
    assert [i.recording_id for i in first_seen(items)] == ["b", "a", "c"]
    assert isinstance(list(first_seen(items))[1], Item)


def test_triaged_items_are_settled_on_the_driver_and_never_worked() -> None:
    worked: list[str] = []
    settled: list[tuple[str, str, str]] = []
    driver = threading.current_thread().name

    def work(item: Item) -> Outcome:
        worked.append(item.recording_id)
        return Outcome(item.recording_id, "archived", keys=("k.json",))

    def settle(outcome: Outcome, item: Item | None) -> Outcome:
        settled.append((outcome.recording_id, outcome.status, threading.current_thread().name))
        return outcome

    got = run_batch(
        [Item("new"), Item("known"), Item("new"), Outcome("unparsable", "failed", stage="list")],
        work,
        result(),
        concurrency=2,
        triage=lambda i: (
            Outcome(i.recording_id, "skipped", stage="catalog") if i.recording_id == "known" else None
        ),
        settle=settle,
    )
    assert worked == ["new"]
    assert sorted(settled) == [
        ("known", "skipped", driver),
        ("new", "archived", driver),
        ("unparsable", "failed", driver),
    ]
    assert got.listed == 3 and got.counts["archived"] == 1 and got.counts["skipped"] == 1


def test_a_catalog_that_fails_while_settling_stops_the_run_and_spoils_the_window() -> None:
    tracker = GroupTracker()
    items = [Item(str(n)) for n in range(6)]
    for item in items:
        tracker.add("w", item.recording_id)
    tracker.close("w")

    def settle(outcome: Outcome, item: Item | None) -> Outcome:
        if outcome.recording_id == "1":
            raise CatalogUnavailable("the catalog's disk is full")
        return outcome

    got = run_batch(
        items,
        lambda i: Outcome(i.recording_id, "archived"),
        result(),
        concurrency=1,
        settle=settle,
        on_outcome=tracker.completed,
    )
    assert got.fatal and "disk is full" in got.fatal
    assert got.counts["archived"] < 6  # no new work after the stop
    assert "w" not in tracker.finished  # recording 1 was not remembered
