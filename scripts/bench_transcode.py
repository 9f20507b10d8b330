#!/usr/bin/env python3
"""Encode time per audio hour and peak memory, per profile, against bare ffmpeg.

    .venv/bin/python scripts/bench_transcode.py [--seconds 3600]

Each encode runs in its own subprocess so its peak RSS (VmHWM, polled) is its own. "bare" is
one ffmpeg command with the profile's arguments on the same file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.media.transcode import Transcoder, find_ffmpeg
from archiver.profiles import BUILTIN
from archiver.sim import audio

CHILD = """
import sys
from archiver.media.transcode import Transcoder
from archiver.profiles import BUILTIN
t = Transcoder(sys.argv[1])
t.encode(sys.argv[2], sys.argv[3], BUILTIN[sys.argv[4]], sys.argv[5], tags={"recording_id": "r-1"})
"""


def measure(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one command, the peak summed over its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        total = 0
        for pid in [proc.pid, *children(proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(status.split("VmRSS:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                pass
        peak = max(peak, total)
        time.sleep(0.005)
    if proc.returncode:
        sys.exit(f"failed: {argv}")
    return time.perf_counter() - start, peak / 1024


def children(pid: int) -> list[int]:
    """Every descendant of ``pid``. A child belongs to the thread that forked it: the
    archiver starts ffmpeg from a worker thread, so every task's list is read (the main
    thread's alone left ffmpeg out of the archiver's tree)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            out += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    for k in list(out):
        out += children(k)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=3600)
    args = ap.parse_args()
    ffmpeg = find_ffmpeg(os.environ.get("ARCHIVER_FFMPEG"))
    work = Path(tempfile.mkdtemp(prefix="archiver-bench-tc-"))
    try:
        src = work / "in.wav"
        src.write_bytes(audio.wav_bytes(args.seconds, 1))
        hours = args.seconds / 3600
        print(f"source: {args.seconds} s of 8 kHz 16-bit mono WAV, {src.stat().st_size / 1e6:.1f} MB")
        print(f"{'profile':14} {'engine':7} {'s/audio-h':>9} {'peak MB':>8}")
        t = Transcoder(ffmpeg)
        for name, profile in BUILTIN.items():
            out = work / f"out.{profile.ext}"
            argv = t.argv(str(src), "wav", profile, str(out))
            bare = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(src)]
            bare += argv[argv.index("-acodec", argv.index("-i")) :]
            rows = [("bare", bare)]
            rows.append(("archiver", [sys.executable, "-c", CHILD, ffmpeg, str(src), "wav", name, str(out)]))
            for engine, argv in rows:
                seconds, peak = measure(argv)
                print(f"{name:14} {engine:7} {seconds / hours:9.2f} {peak:8.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
