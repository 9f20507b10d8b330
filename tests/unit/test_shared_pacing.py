"""Pacing per provider account across processes (issue 9, item 3): SharedPacer objects on the
same slot file share one rate. Each claim opens the file anew, so two pacers here hold two open
file descriptions, whose flocks exclude each other exactly as two processes' do. Slot times are
read from a fake clock, never from wall time."""

from __future__ import annotations

import threading
from pathlib import Path

from archiver.cli.wiring import build_provider
from archiver.config import load_settings
from archiver.providers.http import Pacer, SharedPacer, make_client, pacing_path


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_two_pacers_on_one_account_share_the_rate(tmp_path: Path) -> None:
    t = FakeClock()
    path = str(tmp_path / "slots")
    a = SharedPacer(2.0, path, clock=t.clock, sleep=t.sleep)
    b = SharedPacer(2.0, path, clock=t.clock, sleep=t.sleep)
    slots = [p.reserve()[1] for p in (a, b, a, b, b)]
    assert slots == [1000.0, 1000.5, 1001.0, 1001.5, 1002.0]
    # Two per-process pacers (what two runs had before) each hand out the full rate.
    c, d = Pacer(2.0, clock=t.clock), Pacer(2.0, clock=t.clock)
    assert [p.reserve()[1] for p in (c, d, c, d)] == [1000.0, 1000.0, 1000.5, 1000.5]


def test_wait_sleeps_until_the_shared_slot(tmp_path: Path) -> None:
    t = FakeClock()
    path = str(tmp_path / "slots")
    a = SharedPacer(4.0, path, clock=t.clock, sleep=t.sleep)
    b = SharedPacer(4.0, path, clock=t.clock, sleep=t.sleep)
    a.wait()
    b.wait()  # b has never waited itself, yet it waits for a's reservation
    a.wait()
    assert t.sleeps == [0.25, 0.25]
    t.now += 60  # idle time is not saved up into a burst
    assert b.reserve() == (t.now, t.now)


def test_many_threads_on_two_pacers_get_distinct_slots(tmp_path: Path) -> None:
    # Each pacer's own thread lock does not cover the other: only the flock keeps the
    # read-modify-write of the slot file whole.
    t = FakeClock()
    path = str(tmp_path / "slots")
    pacers = [SharedPacer(10.0, path, clock=t.clock, sleep=t.sleep) for _ in range(2)]
    got: list[float] = []
    guard = threading.Lock()

    def work(p: SharedPacer) -> None:
        for _ in range(25):
            slot = p.reserve()[1]
            with guard:
                got.append(slot)

    threads = [threading.Thread(target=work, args=(pacers[i % 2],)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(round(s, 6) for s in got) == [round(1000 + k / 10, 6) for k in range(200)]


def test_other_accounts_and_families_pace_apart(tmp_path: Path) -> None:
    t = FakeClock()
    folder = str(tmp_path)
    paths = {
        pacing_path(folder, "catapult", "https://api.example", "u-1", "media"),
        pacing_path(folder, "catapult", "https://api.example", "u-1", "recordings"),
        pacing_path(folder, "catapult", "https://api.example", "u-2", "media"),
        pacing_path(folder, "plivo", "https://api.example", "u-1", "media"),
    }
    assert len(paths) == 4
    slots = [SharedPacer(1.0, p, clock=t.clock).reserve()[1] for p in sorted(paths)]
    assert slots == [1000.0] * 4


def test_a_stale_or_damaged_slot_file_is_not_obeyed(tmp_path: Path) -> None:
    t = FakeClock()
    path = tmp_path / "slots"
    path.write_text("99999999.0\n")  # written before the wall clock went back
    assert SharedPacer(1.0, str(path), clock=t.clock).reserve()[1] == 1000.0
    path.write_text("\x00garbage")  # a process died mid-write
    assert SharedPacer(1.0, str(path), clock=t.clock).reserve()[1] == 1000.0
    assert float(path.read_text()) == 1001.0


def test_without_its_folder_it_paces_in_process_and_creates_nothing(tmp_path: Path) -> None:
    t = FakeClock()
    missing = tmp_path / "not-yet" / "slots"
    p = SharedPacer(2.0, str(missing), clock=t.clock)
    assert [p.reserve()[1] for _ in range(3)] == [1000.0, 1000.5, 1001.0]
    assert not missing.parent.exists()


def test_build_provider_shares_slots_per_account_in_the_catalogs_folder(tmp_path: Path) -> None:
    env = {"PLIVO_AUTH_ID": "MA0000000000000000001", "PLIVO_AUTH_TOKEN": "tok"}
    catalog = tmp_path / "state" / "catalog.db"
    paths = []
    for dest in ("/srv/one", "/srv/two"):  # two runs, two destinations, one account
        settings = load_settings(None, env, {"archive.catalog": str(catalog), "archive.dest": dest})
        with make_client() as client:
            provider = build_provider(settings, "plivo", client)
        pacer = provider.api.pacers["api"]  # type: ignore[attr-defined]
        assert isinstance(pacer, SharedPacer)
        paths.append(pacer.path)
    assert paths[0] == paths[1] and Path(paths[0]).parent == catalog.parent
    other = load_settings(
        None, {**env, "PLIVO_AUTH_ID": "MA0000000000000000002"}, {"archive.catalog": str(catalog)}
    )
    with make_client() as client:
        assert build_provider(other, "plivo", client).api.pacers["api"].path != paths[0]  # type: ignore[attr-defined]


def test_a_slot_file_of_an_older_version_or_longer_is_taken_up_and_rewritten_whole(tmp_path: Path) -> None:
    # A slot is rewritten in place at one width (no truncate per request). A file an older
    # version wrote (shorter, variable width) is read as it is; one longer than a record
    # (damaged, or another format) is cut to the record, so no old bytes trail the new slot.
    t = FakeClock()
    path = tmp_path / "slots"
    path.write_bytes(b"1002.5\n")  # an older version's slot, shorter than a record
    a = SharedPacer(2.0, str(path), clock=t.clock, sleep=t.sleep)
    assert a.reserve()[1] == 1002.5  # honoured: that process's reservation stands
    assert float(path.read_bytes()) == 1003.0 and path.read_bytes().endswith(b"\n")
    record = len(path.read_bytes())
    path.write_bytes(b"1004.0\n" + b" " * 40 + b"junk")  # longer than a record
    assert a.reserve()[1] == t.now  # unreadable: no reservation, as before
    assert len(path.read_bytes()) == record and float(path.read_bytes()) == t.now + 0.5
    assert [a.reserve()[1] for _ in range(2)] == [t.now + 0.5, t.now + 1.0]
