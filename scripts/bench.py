#!/usr/bin/env python3
"""Throughput and memory figures for archiving, against the bundled simulator on loopback.

Prints, for each case: recordings/s, MB/s, wall time of the first run and of a repeat run over
the same range, and the archiver process's peak RSS. Run after scripts/test.sh built .venv:

    .venv/bin/python scripts/bench.py [--recordings 200] [--long-seconds 3600] [--s3]

Each archiver run is a real subprocess (`python -m archiver`), so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.sim import Simulator

RANGE = ["--since", "2024-01-01", "--until", "2024-03-01"]


def archive(
    env: dict[str, str], provider: str, dest: str, catalog: str, extra: list[str]
) -> tuple[float, float, str]:
    """Run one backfill; (seconds, peak RSS MB of that process, summary line)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the child exits
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver",
            "-q",
            "backfill",
            "--provider",
            provider,
            *RANGE,
            "--dest",
            dest,
            "--catalog",
            catalog,
            *extra,
        ],
        env=env,
        stdout=out,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    # Peak RSS from /proc (VmHWM): the rusage of a forked child would include this process's
    # own memory (the simulator's media) from before exec.
    peak_kb = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"archiver failed ({proc.returncode})")
    out.seek(0)
    return seconds, peak_kb / 1024, out.read().decode().strip().splitlines()[-1]


def case(name: str, sim: Simulator, provider: str, dest: str, env: dict[str, str], extra: list[str]) -> None:
    catalog = tempfile.mktemp(suffix=".db")
    recs = sim.catapult if provider == "catapult" else sim.plivo
    total = sum(len(sim.media_bytes(r)) for r in recs if r.state == "complete")
    count = sum(1 for r in recs if r.state == "complete")
    first, rss, line = archive(env, provider, dest, catalog, extra)
    media = sim.stats[f"{provider}.media.requests"]
    repeat, _, line2 = archive(env, provider, dest, catalog, extra)
    print(f"{name}: {count} recordings, {total / 1e6:.1f} MB")
    print(
        f"  first run   {first:6.2f} s  {count / first:6.1f} rec/s  {total / 1e6 / first:6.1f} MB/s"
        f"  peak RSS {rss:.0f} MB   [{line}]"
    )
    print(
        f"  repeat run  {repeat:6.2f} s  ({100 * repeat / first:.0f}% of first), media requests "
        f"{sim.stats[f'{provider}.media.requests'] - media}   [{line2}]"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=200)
    ap.add_argument("--long-seconds", type=int, default=3600, help="duration of the long-recording case")
    ap.add_argument("--s3", action="store_true", help="also archive into moto's S3 server")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    work = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    base = {
        **os.environ,
        "CATAPULT_REQUESTS_PER_SECOND": "1000",
        "PLIVO_REQUESTS_PER_SECOND": "1000",
        "XDG_STATE_HOME": str(work / "state"),
    }
    try:
        with Simulator(recordings=args.recordings, seed=42, seconds=(3, 120)) as sim:
            env = base | sim.env()
            for r in sim.plivo + sim.catapult:  # generate media before timing
                if r.state == "complete":
                    sim.media_bytes(r)
            case("plivo -> local (mp3/wav, 3-120 s)", sim, "plivo", str(work / "p"), env, [])
            case("catapult -> local (wav, 3-120 s)", sim, "catapult", str(work / "c"), env, [])
            if args.s3:
                import boto3
                from moto.server import ThreadedMotoServer

                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                s3env = env | {
                    "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                    "AWS_ACCESS_KEY_ID": "x",
                    "AWS_SECRET_ACCESS_KEY": "x",
                    "AWS_DEFAULT_REGION": "us-east-1",
                }
                boto3.client(
                    "s3",
                    endpoint_url=s3env["AWS_ENDPOINT_URL"],
                    region_name="us-east-1",
                    aws_access_key_id="x",
                    aws_secret_access_key="x",
                ).create_bucket(Bucket="bench")
                case("catapult -> S3 (moto)", sim, "catapult", "s3://bench/c", s3env, [])
                server.stop()
        n = 3
        with Simulator(recordings=n, seed=7, seconds=(args.long_seconds - 1, args.long_seconds)) as sim:
            env = base | sim.env()
            for r in sim.catapult:
                sim.media_bytes(r)
            case(
                f"long recordings ({args.long_seconds} s WAV) -> local",
                sim,
                "catapult",
                str(work / "l"),
                env,
                ["--concurrency", "1"],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
