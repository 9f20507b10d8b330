"""Ctrl-C and SIGTERM to a real archiver process mid-run (issue 9, "the first hour").

The run's downloads are held by the scripted server at a gate, so the signal certainly lands
while recordings are in flight and more are queued (conditions, not sleeps). The first signal
stops it after the recordings in flight: exit 128 + signal, summary, report and metrics
written, the catalog's run row finished, the window not finished. A second signal stops it at
once, with nothing half-written. Either way a rerun archives every recording exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from stand_in import PLIVO_ID, PLIVO_TOKEN, RANGE, hold_media, plivo_listing, plivo_record, wav

N = 30
FREE = 3  # downloads served before the gate
WORKERS = 4
STOPPING = "stopping after the recordings in flight"


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Live:
    """A backfill subprocess whose stderr is read as it comes (to wait on a log line)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.err))

    def finish(self, timeout: float = 60.0) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        if self.proc.stdout.closed:
            return self.proc.wait(timeout), "", "".join(self.err)
        with self.proc:  # closes the pipes
            out = self.proc.stdout.read()
            code = self.proc.wait(timeout)
            self._reader.join(timeout)
        return code, out, "".join(self.err)


@pytest.fixture
def held(scripted, plivo_at):
    """N Plivo recordings whose downloads after the first FREE wait for ``gate``."""
    plist = plivo_at(scripted)
    records = [
        plivo_record(scripted, f"r-{i:02d}", start_ms=1706781600000 + i * 60_000, seconds=1.0)
        for i in range(N)
    ]
    scripted.route("GET", plist, plivo_listing(records))
    gate, served = hold_media(scripted, FREE, wav(1.0), wait=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CATAPULT_", "ARCHIVER_"))}
    env |= {
        "PLIVO_AUTH_ID": PLIVO_ID,
        "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
        "PLIVO_BASE_URL": scripted.url,
        "PLIVO_REQUESTS_PER_SECOND": "1000",
    }
    lives: list[Live] = []
    try:
        yield gate, served, env, lives
    finally:
        gate.set()
        for live in lives:  # a test that failed half-way leaves no process behind
            if live.proc.poll() is None:
                live.proc.kill()
            live.finish()


def backfill_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "backfill",
        "--provider",
        "plivo",
        *RANGE,
        "--dest",
        str(tmp_path / "archive"),
        "--catalog",
        str(tmp_path / "cat.db"),
        "--concurrency",
        str(WORKERS),
        *extra,
    ]


def start_and_hold(tmp_path: Path, held, *extra: str) -> Live:
    _, served, env, lives = held
    live = Live(backfill_args(tmp_path, *extra), env)
    lives.append(live)
    dest = tmp_path / "archive"
    wait_for(lambda: len(list(dest.rglob("*.json"))) >= FREE, "the first sidecars")
    wait_for(lambda: sum(served.values()) >= FREE + WORKERS, "downloads held at the gate")
    return live


def assert_nothing_half_written(dest: Path) -> set[str]:
    """Every file outside the staging folder is a sidecar or a file a sidecar lists, whole."""
    listed: set[str] = set()
    ids = set()
    for sidecar in dest.rglob("*.json"):
        if ".archiver-staging" in sidecar.parts:
            continue
        doc = json.loads(sidecar.read_text())
        ids.add(doc["recording"]["recording_id"])
        listed.add(str(sidecar.relative_to(dest)))
        for f in doc["files"]:
            assert (dest / f["key"]).stat().st_size == f["bytes"]
            listed.add(f["key"])
    found = {
        str(p.relative_to(dest))
        for p in dest.rglob("*")
        if p.is_file() and not {".archiver-staging", "_custody", "_layouts"} & set(p.relative_to(dest).parts)
    }
    assert found == listed, found ^ listed
    return ids


def rerun_archives_the_rest(tmp_path: Path, env: dict[str, str], served: Counter[str], before: set[str]):
    dest = tmp_path / "archive"
    again = subprocess.run(
        [sys.executable, "-m", "archiver", *backfill_args(tmp_path, "--report", str(tmp_path / "r2.json"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    report = json.loads((tmp_path / "r2.json").read_text())
    assert report["counts"]["archived"] == N - len(before)
    assert report["counts"]["skipped"] == len(before)
    assert len(served) == N
    assert assert_nothing_half_written(dest) == {f"r-{i:02d}" for i in range(N)}
    assert not (dest / ".archiver-staging").exists()
    check = subprocess.run(
        [sys.executable, "-m", "archiver", "verify", "--dest", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_after_the_recordings_in_flight(tmp_path: Path, held, sig: int, code: int) -> None:
    gate, served, env, _ = held
    report, metrics = tmp_path / "run.json", tmp_path / "archiver.prom"
    live = start_and_hold(tmp_path, held, "--report", str(report), "--metrics-file", str(metrics))
    live.proc.send_signal(sig)
    wait_for(lambda: live.said(STOPPING), "the stopping line")
    gate.set()  # the recordings in flight may finish now
    status, out, err = live.finish()
    assert status == code, err
    assert "Traceback" not in err
    name = signal.Signals(sig).name
    assert f"STOPPED by {name}" in out

    doc = json.loads(report.read_text())
    assert doc["stopped_by"] == name
    # The held downloads finished; the queued ones were never started nor counted.
    assert doc["counts"]["archived"] == FREE + WORKERS == sum(served.values())
    assert doc["counts"]["listed"] == FREE + WORKERS
    exit_lines = [x for x in metrics.read_text().splitlines() if x.startswith("archiver_last_run_exit_code{")]
    assert len(exit_lines) == 1 and exit_lines[0].endswith(f" {code}")

    dest = tmp_path / "archive"
    before = assert_nothing_half_written(dest)
    assert len(before) == FREE + WORKERS
    assert not (dest / ".archiver-staging").exists()  # a graceful stop cleans up after itself
    with closing(sqlite3.connect(tmp_path / "cat.db")) as db:
        runs = db.execute("SELECT exit_code, finished_at FROM runs").fetchall()
        windows = db.execute("SELECT COUNT(*) FROM windows").fetchone()[0]
    assert len(runs) == 1 and runs[0][0] == code and runs[0][1]
    assert windows == 0  # the window it was in is not finished

    rerun_archives_the_rest(tmp_path, env, served, before)


def test_a_second_ctrl_c_stops_at_once_with_nothing_half_written(tmp_path: Path, held) -> None:
    gate, served, env, _ = held
    live = start_and_hold(tmp_path, held, "--report", str(tmp_path / "run.json"))
    live.proc.send_signal(signal.SIGINT)
    wait_for(lambda: live.said(STOPPING), "the stopping line")
    live.proc.send_signal(signal.SIGINT)  # the downloads are still held: only "at once" ends it
    status, _, err = live.finish(timeout=30)
    assert status == 130, err
    assert "stopping now" in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()  # no report: a half one is never left either

    dest = tmp_path / "archive"
    before = assert_nothing_half_written(dest)
    assert len(before) == FREE
    gate.set()
    rerun_archives_the_rest(tmp_path, env, served, before)
