"""Grouped folder fsyncs and batched catalog writes (issue 11): a run killed (SIGKILL) while
a folder's fsync is held at a gate leaves no sidecar naming a file whose name was not made
durable first, and no catalog row saying "archived" of a sidecar whose name was not; the
rerun completes the archive."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver.sim import Simulator

RANGE = ["--since", "2024-01-01", "--until", "2024-03-01"]

# The archiver, with every folder fsync logged (the names it covers, once it is done) and the
# N-th one held forever: the test kills the process there, as a power cut would hit it.
GATED = """
import json, os, sys, threading
import archiver.catalog
import archiver.storage.local as local

archiver.catalog.Catalog.BATCH_ROWS = 3  # several batches in a small run
log = open(os.environ["FSYNC_LOG"], "a", buffering=1)
gate, calls, guard, real = int(os.environ["FSYNC_GATE"]), [0], threading.Lock(), local._fsync_dir

def fsync_dir(path):
    with guard:
        calls[0] += 1
        n = calls[0]
    names = sorted(os.listdir(path))  # what this fsync makes durable
    if n == gate:
        log.write(json.dumps({"gate": n}) + "\\n")
        threading.Event().wait()
    real(path)
    log.write(json.dumps({"dir": str(path), "names": names}) + "\\n")

local._fsync_dir = fsync_dir
from archiver.cli import main
main(prog_name="archiver")
"""


def durable_names(log: Path) -> set[Path]:
    """Every path whose name a completed folder fsync covered."""
    out: set[Path] = set()
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if "dir" in event:
            out |= {Path(event["dir"]) / name for name in event["names"]}
    return out


@pytest.mark.parametrize("gate", [3, 4, 5, 7, 9])
def test_sigkill_at_a_folder_fsync_leaves_no_claim_ahead_of_durability(tmp_path: Path, gate: int) -> None:
    with Simulator(recordings=9, seed=51) as sim:
        dest, catalog, log = tmp_path / "a", tmp_path / "cat.db", tmp_path / "fsync.log"
        env = {**os.environ, **sim.env(), "FSYNC_LOG": str(log), "FSYNC_GATE": str(gate)}
        argv = ["-q", "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest)]
        argv += ["--catalog", str(catalog), "--concurrency", "1"]
        proc = subprocess.Popen(
            [sys.executable, "-c", GATED, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while '"gate"' not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, f"the run ended before fsync {gate}: {proc.communicate()}"
            assert time.monotonic() < deadline, "the gate was never reached"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

        durable = durable_names(log)
        sidecars = sorted(p for p in dest.rglob("*.json") if ".archiver-staging" not in p.parts)
        # Fsyncs 1-2 record the layout (the root, _layouts/), 3 is the first media folder's.
        assert sidecars or gate <= 3  # past it, the first recording's sidecar is written
        for sidecar in sidecars:  # a sidecar only ever names files whose names were durable
            for f in json.loads(sidecar.read_text())["files"]:
                assert dest / f["key"] in durable, f"{sidecar.name} names {f['key']}, not yet durable"
        with sqlite3.connect(catalog) as db:
            claimed = db.execute("SELECT sidecar_key FROM recordings WHERE state='archived'").fetchall()
        for (key,) in claimed:  # the catalog says "archived" only of durable sidecars
            assert dest / key in durable, f"the catalog claims {key} before its name was durable"
        assert {dest / key for (key,) in claimed} <= set(sidecars)

        rerun = subprocess.run(
            [sys.executable, "-m", "archiver", *argv],
            env={**os.environ, **sim.env()},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr
        names = sorted(  # the destination's own (_custody/, _layouts/) aside
            p.name
            for p in dest.rglob("*")
            if p.is_file() and not p.relative_to(dest).parts[0].startswith("_")
        )
        assert names == sorted([f"{r.id}.{r.fmt}" for r in sim.plivo] + [f"{r.id}.json" for r in sim.plivo])
        with sqlite3.connect(catalog) as db:
            assert db.execute("SELECT COUNT(*) FROM recordings WHERE state='archived'").fetchone() == (9,)
