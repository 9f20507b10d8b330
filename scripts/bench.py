#!/usr/bin/env python3
"""The performance benchmark of issue 11: the archiver against the bare work and against the
loop users write today, on loopback (the bundled simulator and moto's S3 server).

    .venv/bin/python scripts/bench.py [--quick] [--json PATH] [--profile PATH] [--breakdown]
                                      [--attribute] [--only FIGURES] [--no-loop]

Figures (each archiver run is a real subprocess, `python -m archiver`, so its time includes
start-up and its peak RSS is its own; A/B figures are measured as pairs A B A B ... in this
run and reported as medians):
  small-local   300 Plivo recordings (~30 s mp3/wav) into a folder, 4 workers, vs
                scripts/bare_local.py (GET + SHA-256 while streaming + write/fsync/rename +
                a small JSON file), same concurrency.              goal: ratio <= 1.2
  small-s3      the same into S3 (moto) vs scripts/bare_s3.py (GET + hash + upload_file +
                a small JSON put_object).                          goal: ratio <= 1.3
  loop          vs `curl -sfL -o` + `aws s3 cp` per file through `xargs -P 4`
                (scripts/loop_curl_awscli.sh; awscli from PyPI in .venv-awscli, created
                here; skipped with a note if it cannot be installed); bytes compared.
                                                                   goal: >= 20x faster
  long-*        one 1 h and one 4 h 8 kHz WAV (Catapult), local and S3: the archiver's peak
                RSS (VmHWM).                      goal: < 120 MB, 4 h within 10 MB of 1 h
  repeat        a repeat backfill over an archived range of 1,000 recordings: media requests
                seen by the simulator, time as a fraction of the first run. goal: 0, <= 5 %
  transcode-*   `archiver transcode --force` of one archived hour per built-in profile vs
                the one bare ffmpeg command a user types for the same output (`ffmpeg -i
                in.wav` + the profile's encoding options); peak RSS of each process tree
                (bench_transcode.py's measure()). The note adds ffmpeg run with the
                archiver's own arguments (it reads a WAV in larger packets), and the
                archiver's overhead over that in seconds.          goal: ratio <= 1.15
  scale-*       export / verify / transcode selecting one day out of a 20,000-recording
                archive (built synthetically: sidecars + tiny WAVs in the default layout,
                then `archiver reindex`), local and S3: sidecar reads, keys listed and S3
                requests (counted by scripts/_counting_cli.py), time.
                                                        goal: reads <= 2x the day's count
  catalog       Catalog.get() per lookup at 1,000 vs 100,000 rows.  goal: ratio <= 1.5

The simulator's pacing is lifted (CATAPULT_/PLIVO_REQUESTS_PER_SECOND=1000) so that pacing,
which is the provider's limit and not our overhead, does not dominate. The baselines are given
the media URLs directly (no listing); the archiver lists them through the provider API.
A full run took 16 minutes on 2 cores (2026-12-02), most of it building the S3 scale archive
and reindexing it (about 5 minutes) and the curl + aws loop (one `aws` start per file: about
80-100 s a run for the 300 recordings). --quick: fewer recordings, shorter long
recordings, a 2,000-recording scale archive, fewer pairs where a figure allows: a smoke check
in about two minutes, not the figures to quote.
The archiver's modules are byte-compiled first, as installing the wheel does (a checkout run
with PYTHONDONTWRITEBYTECODE=1 would otherwise compile them in every timed process).
--breakdown: instead of the figures, small-local's CPU time by thread (start-up, driver,
workers, listing), archiver and bare script side by side (scripts/_threadcpu.py).
--attribute: instead of the figures, small-local's CPU time by stage (the driver's lookups,
a worker's fetch, probe, keys, sidecar...) per recording, beside bare_local.py's whole
worker per recording (scripts/_attribute.py).
--profile PATH: instead of the figures, run the archiver side of small-local under py-spy
(sampling the thread that holds the GIL) and print its top functions; the collapsed stacks go
to PATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_transcode import children
from bench_transcode import measure as measure_tree

from archiver.media.transcode import Transcoder, find_ffmpeg
from archiver.models import DEFAULT_LAYOUT
from archiver.profiles import BUILTIN
from archiver.sidecars import layout_key
from archiver.sim import Simulator, audio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
RANGE = ["--since", "2024-01-01", "--until", "2024-03-01"]
PACING = {"CATAPULT_REQUESTS_PER_SECOND": "1000", "PLIVO_REQUESTS_PER_SECOND": "1000"}
ACCOUNT = "MASIMULATOR000000001"


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    hwm_mb: float  # the process's own peak RSS (VmHWM)
    tree_mb: float  # the largest RSS sum seen over its process tree
    out: str
    rc: int


def run(argv: Sequence[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Run:
    """Run ``argv`` to the end, polling its peak memory from /proc (the rusage of a forked child
    would include this process's memory, the simulator's media, from before exec)."""
    out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the child exits
    err = tempfile.TemporaryFile()  # noqa: SIM115
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    hwm = tree = 0
    while proc.poll() is None:
        total = 0
        for pid in [proc.pid, *children(proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            try:
                total += int(status.split("VmRSS:")[1].split()[0])
                if pid == proc.pid:
                    hwm = max(hwm, int(status.split("VmHWM:")[1].split()[0]))
            except (IndexError, ValueError):
                pass
        tree = max(tree, total)
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    out.seek(0)
    err.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode not in ok:
        sys.exit(
            f"failed ({proc.returncode}): {' '.join(argv)}\n{text[-2000:]}\n{err.read().decode()[-3000:]}"
        )
    return Run(seconds, hwm / 1024, tree / 1024, text, proc.returncode)


def archiver(*args: str) -> list[str]:
    return [PY, "-m", "archiver", "-q", *args]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    figure: str
    archiver: float | None
    baseline: float | None
    ratio: float | None
    goal: str
    met: bool | None
    unit: str = "s"
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Results:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  -> {fmt_row(row)}", flush=True)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}{unit}"
    return f"{value:.2f}{unit}" if abs(value) < 10 else f"{value:.1f}{unit}"


def fmt_row(r: Row) -> str:
    met = "-" if r.met is None else ("yes" if r.met else "NO")
    ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
    return (
        f"{r.figure:34} {fmt(r.archiver, ' ' + r.unit):>12} {fmt(r.baseline, ' ' + r.unit):>12} "
        f"{ratio:>8} {r.goal:>24} {met:>4}  {r.note}"
    )


def pairs(n: int, a: Callable[[int], Run], b: Callable[[int], Run]) -> tuple[list[Run], list[Run]]:
    """A B A B ...: both sides see the same machine state, drift shared."""
    ra, rb = [], []
    for i in range(n):
        ra.append(a(i))
        rb.append(b(i))
        print(f"    pair {i + 1}/{n}: {ra[-1].seconds:.2f} s vs {rb[-1].seconds:.2f} s", flush=True)
    return ra, rb


# --- the world: simulator, moto, awscli -----------------------------------------------------


def warm(sim: Simulator, recs: list[Any]) -> int:
    """Generate the media before timing, kept for the whole run (the simulator's own cache is
    bounded): timed runs must not wait for ffmpeg making MP3s. Returns total bytes."""
    original = sim.media_bytes
    with ThreadPoolExecutor(4) as pool:
        cache = {r.id: body for r, body in zip(recs, pool.map(original, recs), strict=True)}
    sim.media_bytes = lambda r: cache[r.id] if r.id in cache else original(r)  # type: ignore[method-assign]
    return sum(len(b) for b in cache.values())


def media_list(sim: Simulator, path: Path) -> list[dict[str, Any]]:
    """The Plivo media URLs and archive keys, as the baselines get them (no listing)."""
    items = []
    for r in sim.plivo:
        s = r.started
        key = f"plivo/{ACCOUNT}/{s:%Y}/{s:%m}/{s:%d}/{r.id}.{r.fmt}"
        meta = {"recording_id": r.id, "call_id": r.doc["call_uuid"], "started_at": s.isoformat()}
        items.append({"url": r.doc["recording_url"], "key": key, "meta": meta})
    path.write_text(json.dumps(items))
    path.with_suffix(".tsv").write_text("".join(f"{i['url']} {i['key']}\n" for i in items))
    return items


class Moto:
    """moto's S3 server in its own process (the simulator already shares this one's GIL)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        code = (
            "import logging,sys,time;logging.disable(logging.CRITICAL);"
            "from moto.server import ThreadedMotoServer as T;"
            f"s=T(ip_address='127.0.0.1',port={port},verbose=False);s.start();"
            "sys.stdin.read()"
        )
        self.proc = subprocess.Popen([PY, "-c", code], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.env = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        for _ in range(200):
            try:
                self.client.create_bucket(Bucket="bench")
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        sys.exit("moto's server did not start")

    def digests(self, prefix: str) -> dict[str, str]:
        """SHA-256 of every non-JSON object under ``prefix``, by key relative to it; not the
        archiver's own records (keys beginning with ``_``: ``_custody/``, ``_layouts/``)."""
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith(".json") and not obj["Key"][len(prefix) :].startswith("_"):
                    body = self.client.get_object(Bucket="bench", Key=obj["Key"])["Body"].read()
                    out[obj["Key"][len(prefix) :]] = hashlib.sha256(body).hexdigest()
        return out

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(10)


def awscli() -> tuple[str | None, str]:
    """The ``aws`` of .venv-awscli (made with pip on first use), or None and why not."""
    side = ROOT / ".venv-awscli"
    aws = side / "bin" / "aws"
    if aws.exists():
        return str(aws), ""
    try:
        venv.create(side, with_pip=True)
        proc = subprocess.run(
            [str(side / "bin" / "python"), "-m", "pip", "install", "-q", "awscli"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"awscli not installed: {exc}"
    if proc.returncode or not aws.exists():
        return None, f"awscli not installed: {proc.stderr.strip().splitlines()[-1:]}"
    return str(aws), ""


# --- figures ----------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.quick = args.quick
        self.work = work
        self.results = Results()
        self.base = {
            **os.environ,
            **PACING,
            "XDG_STATE_HOME": str(work / "state"),
            "AWS_CONFIG_FILE": str(work / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws-credentials"),
        }
        for key in list(self.base):
            if key.startswith(("ARCHIVER_", "AWS_ENDPOINT", "AWS_PROFILE")):
                del self.base[key]
        self.n_pairs = 3
        self.moto = Moto()
        self.base |= self.moto.env
        self.ffmpeg = find_ffmpeg(os.environ.get("ARCHIVER_FFMPEG"))
        self.seq = 0

    def fresh(self, name: str) -> Path:
        self.seq += 1
        return self.work / f"{name}-{self.seq}"

    def backfill(self, env: dict[str, str], provider: str, dest: str, *extra: str) -> Run:
        catalog = self.fresh("catalog").with_suffix(".db")
        r = run(
            archiver(
                "backfill", "--provider", provider, *RANGE, "--dest", dest, "--catalog", str(catalog), *extra
            ),
            env,
        )
        if "failed=0" not in r.out:
            sys.exit(f"archiver run not clean: {r.out[-500:]}")
        return r

    # small recordings: local, S3, the user's loop -------------------------------------------

    def small(self, skip_loop: bool) -> None:
        n = 60 if self.quick else 300
        print(f"== {n} Plivo recordings, ~30 s each", flush=True)
        with Simulator(recordings=n, seed=42, seconds=(25, 35)) as sim:
            total = warm(sim, sim.plivo)
            env = self.base | sim.env()
            lst = self.work / "small.json"
            media_list(sim, lst)
            mb = f"{n} recs, {total / 1e6:.1f} MB"

            print("  local: archiver vs bare_local.py", flush=True)
            a, b = pairs(
                self.n_pairs,
                lambda i: self.backfill(env, "plivo", str(self.fresh("local")), "--concurrency", "4"),
                lambda i: run(
                    [
                        PY,
                        str(HERE / "bare_local.py"),
                        str(lst),
                        str(self.fresh("bare")),
                        "--concurrency",
                        "4",
                    ],
                    env,
                ),
            )
            self.ab("small-local (archiver vs bare)", a, b, 1.2, mb)

            print("  S3: archiver vs bare_s3.py", flush=True)
            a, b = pairs(
                self.n_pairs,
                lambda i: self.backfill(env, "plivo", f"s3://bench/arch{i}", "--concurrency", "4"),
                lambda i: run(
                    [PY, str(HERE / "bare_s3.py"), str(lst), f"s3://bench/bare{i}", "--concurrency", "4"], env
                ),
            )
            self.ab("small-s3 (archiver vs bare boto3)", a, b, 1.3, mb)

        self.loop(skip_loop)

    def loop(self, skip_loop: bool) -> None:
        if skip_loop:
            self.results.add(
                Row("loop (curl + aws s3 cp)", None, None, None, ">= 20x", None, note="skipped (--no-loop)")
            )
            return
        aws, why = awscli()
        if aws is None:
            self.results.add(Row("loop (curl + aws s3 cp)", None, None, None, ">= 20x", None, note=why))
            return
        # The same 300 recordings as small-*: a night is that many or more, and the archiver's
        # fixed cost (start-up, boto3's client, the listing: ~0.9 s against S3) is paid once
        # while the loop pays an aws start (~0.27 s of wall at -P 4) per file. With 100 files
        # that fixed cost alone held the figure to 13-15x. The loop takes ~80 s a run.
        n = 60 if self.quick else 300
        print(f"== loop: archiver (S3) vs curl + aws s3 cp, xargs -P 4 ({n} recordings, ~30 s)", flush=True)
        with Simulator(recordings=n, seed=42, seconds=(25, 35)) as sim:
            warm(sim, sim.plivo)
            env = self.base | sim.env()
            lst = self.work / "loop.json"
            media_list(sim, lst)
            loop_env = env | {"AWS": aws}
            a, b = pairs(
                self.n_pairs,
                lambda i: self.backfill(env, "plivo", f"s3://bench/larch{i}", "--concurrency", "4"),
                lambda i: run(
                    [
                        "sh",
                        str(HERE / "loop_curl_awscli.sh"),
                        str(lst.with_suffix(".tsv")),
                        f"s3://bench/loop{i}",
                    ],
                    loop_env,
                ),
            )
        mine, theirs = self.moto.digests("larch0/"), self.moto.digests("loop0/")
        same = mine == theirs and len(mine) == n
        if not same:
            print(
                f"    bytes differ: {len(mine)} vs {len(theirs)} objects, "
                f"{len(set(mine) ^ set(theirs))} keys not in both",
                flush=True,
            )
        ratio = median([y.seconds / x.seconds for x, y in zip(a, b, strict=True)])
        self.results.add(
            Row(
                "loop (speed-up vs curl+aws s3 cp)",
                median([r.seconds for r in a]),
                median([r.seconds for r in b]),
                ratio,
                "speed-up >= 20x, same bytes",
                ratio >= 20 and same,
                note=f"{n} files, bytes identical: {same}",
                detail={
                    "archiver": [r.seconds for r in a],
                    "loop": [r.seconds for r in b],
                    "same_bytes": same,
                },
            )
        )

    def ab(self, figure: str, a: list[Run], b: list[Run], goal: float, note: str) -> None:
        ratio = median([x.seconds / y.seconds for x, y in zip(a, b, strict=True)])
        self.results.add(
            Row(
                figure,
                median([r.seconds for r in a]),
                median([r.seconds for r in b]),
                ratio,
                f"ratio <= {goal}",
                ratio <= goal,
                note=f"{note}; archiver peak RSS {median([r.hwm_mb for r in a]):.0f} MB",
                detail={"archiver": [r.seconds for r in a], "baseline": [r.seconds for r in b]},
            )
        )

    # long recordings: memory -----------------------------------------------------------------

    def long(self) -> Path | None:
        hours = (600, 2400) if self.quick else (3600, 14400)
        runs = 1 if self.quick else 3
        peaks: dict[tuple[str, int], float] = {}
        keep: Path | None = None
        for seconds in hours:
            print(f"== one {seconds} s 8 kHz WAV (Catapult)", flush=True)
            with Simulator(recordings=1, seed=7, seconds=(seconds, seconds)) as sim:
                size = warm(sim, sim.catapult)
                env = self.base | sim.env()
                for where in ("local", "s3"):
                    rs = []
                    for _ in range(runs):
                        dest = str(self.fresh("long")) if where == "local" else "s3://bench/long"
                        rs.append(self.backfill(env, "catapult", dest, "--concurrency", "1", "--force"))
                        if where == "local" and seconds == hours[0] and keep is None:
                            keep = Path(dest)
                    peaks[(where, seconds)] = median([r.hwm_mb for r in rs])
                    print(
                        f"    {where}: {size / 1e6:.0f} MB in {median([r.seconds for r in rs]):.2f} s, "
                        f"peak RSS {peaks[(where, seconds)]:.0f} MB",
                        flush=True,
                    )
                self.moto.client.delete_object(Bucket="bench", Key=self._long_key(sim))
        for where in ("local", "s3"):
            short, longer = peaks[(where, hours[0])], peaks[(where, hours[1])]
            self.results.add(
                Row(
                    f"long-{where} peak RSS {hours[0] // 60}m / {hours[1] // 60}m",
                    longer,
                    short,
                    longer / short,
                    "< 120 MB, within 10 MB",
                    longer < 120 and short < 120 and abs(longer - short) <= 10,
                    unit="MB",
                    note=f"archiver = {hours[1] // 60} min, baseline column = {hours[0] // 60} min",
                    detail={"peaks_mb": {f"{w}-{s}": v for (w, s), v in peaks.items()}},
                )
            )
        return keep

    @staticmethod
    def _long_key(sim: Simulator) -> str:
        r = sim.catapult[0]
        s = r.started
        return f"long/catapult/{sim.env()['CATAPULT_USER_ID']}/{s:%Y}/{s:%m}/{s:%d}/{r.id}.wav"

    # repeat run ---------------------------------------------------------------------------------

    def repeat(self) -> None:
        n = 150 if self.quick else 1000
        print(f"== repeat run over {n} archived Plivo recordings", flush=True)
        with Simulator(recordings=n, seed=5, seconds=(25, 35)) as sim:
            warm(sim, sim.plivo)
            env = self.base | sim.env()
            firsts, repeats, media = [], [], []
            for _ in range(1 if self.quick else self.n_pairs):
                dest = str(self.fresh("repeat"))
                catalog = str(self.fresh("catalog").with_suffix(".db"))
                argv = archiver(
                    "backfill",
                    "--provider",
                    "plivo",
                    *RANGE,
                    "--dest",
                    dest,
                    "--catalog",
                    catalog,
                    "--concurrency",
                    "4",
                )
                first = run(argv, env)
                before = sim.stats["plivo.media.requests"]
                again = run(argv, env)
                media.append(sim.stats["plivo.media.requests"] - before)
                firsts.append(first.seconds)
                repeats.append(again.seconds)
                print(
                    f"    first {first.seconds:.2f} s, repeat {again.seconds:.2f} s, "
                    f"media requests {media[-1]}",
                    flush=True,
                )
        frac = median([r / f for r, f in zip(repeats, firsts, strict=True)])
        self.results.add(
            Row(
                f"repeat run ({n} recs) / first run",
                median(repeats),
                median(firsts),
                frac,
                "<= 0.05, 0 media requests",
                frac <= 0.05 and max(media) == 0,
                note=f"media requests in repeat runs: {media}",
                detail={"first": firsts, "repeat": repeats, "media_requests": media},
            )
        )

    # transcoding ----------------------------------------------------------------------------------

    def transcode(self, archive: Path | None) -> None:
        if archive is None:
            return
        src = next(archive.rglob("*.wav"))
        seconds = audio_seconds(src)
        print(f"== transcode {seconds:.0f} s of archived WAV per profile", flush=True)
        catalog = self.work / "transcode.db"
        env = self.base | {"ARCHIVER_CATALOG": str(catalog)}
        t = Transcoder(self.ffmpeg)
        for name, profile in BUILTIN.items():
            out = self.work / f"bare.{profile.ext}"
            bare = bare_ffmpeg(t, src, profile, out)
            same = [*t.argv(str(src), "wav", profile, str(out))]  # the archiver's own command
            mine = archiver("transcode", "--dest", str(archive), "--profile", name, "--force")
            rss_a, rss_b, same_s = [], [], []

            def a(i: int, mine: list[str] = mine, rss: list[float] = rss_a) -> Run:
                r = run(mine, env)
                rss.append(r.tree_mb)
                return r

            def b(
                i: int,
                bare: list[str] = bare,
                same: list[str] = same,
                rss: list[float] = rss_b,
                s: list[float] = same_s,
            ) -> Run:
                s.append(measure_tree(same)[0])
                seconds, peak = measure_tree(bare)
                rss.append(peak)
                return Run(seconds, peak, peak, "", 0)

            ra, rb = pairs(1 if self.quick else self.n_pairs, a, b)
            ratio = median([x.seconds / y.seconds for x, y in zip(ra, rb, strict=True)])
            over = median([x.seconds - y for x, y in zip(ra, same_s, strict=True)])
            self.results.add(
                Row(
                    f"transcode {name} ({seconds / 3600:.2g} h)",
                    median([r.seconds for r in ra]),
                    median([r.seconds for r in rb]),
                    ratio,
                    "ratio <= 1.15",
                    ratio <= 1.15,
                    note=(
                        f"peak RSS tree: archiver {median(rss_a):.0f} MB, ffmpeg {median(rss_b):.0f} MB; "
                        f"ffmpeg with the archiver's own arguments {median(same_s):.2f} s, "
                        f"archiver's overhead over it {over:+.2f} s"
                    ),
                    detail={
                        "archiver": [r.seconds for r in ra],
                        "bare": [r.seconds for r in rb],
                        "same_args": same_s,
                        "rss_archiver_mb": rss_a,
                        "rss_bare_mb": rss_b,
                    },
                )
            )

    # scale -----------------------------------------------------------------------------------------

    def scale(self) -> None:
        n = 2000 if self.quick else 20000
        day = datetime(2024, 1, 15, tzinfo=UTC)
        local = self.work / "scale"
        print(f"== scale: synthetic archive of {n} recordings (local and S3)", flush=True)
        t0 = time.perf_counter()
        files, in_day = synthetic_archive(n, day)
        for key, body in files:
            path = local / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda kb: self.moto.client.put_object(Bucket="bench", Key="scale/" + kb[0], Body=kb[1]),
                    files,
                )
            )
        print(
            f"    built in {time.perf_counter() - t0:.0f} s; {in_day} recordings on {day:%Y-%m-%d}",
            flush=True,
        )
        since = ["--since", f"{day:%Y-%m-%d}", "--until", f"{day + timedelta(days=1):%Y-%m-%d}"]
        for where, dest in (("local", str(local)), ("s3", "s3://bench/scale")):
            catalog = self.work / f"scale-{where}.db"
            env = self.base | {"ARCHIVER_CATALOG": str(catalog)}
            ri = run(archiver("reindex", "--dest", dest, "--catalog", str(catalog)), env)
            print(f"    {where}: reindex of {n} in {ri.seconds:.1f} s", flush=True)
            commands = {
                "export": ["export", "--dest", dest, *since, "--out", str(self.fresh("export"))],
                "verify": ["verify", "--dest", dest, *since],
                "transcode": ["transcode", "--dest", dest, "--profile", "wav-pcm16-8k", *since],
            }
            for what, argv in commands.items():
                counts_path = self.fresh("counts").with_suffix(".json")
                r = run(
                    [PY, str(HERE / "_counting_cli.py"), "-q", *argv],
                    env | {"BENCH_COUNTS": str(counts_path), "PYTHONPATH": str(ROOT)},
                )
                counts = Counter(json.loads(counts_path.read_text()))
                s3 = sum(v for k, v in counts.items() if k.startswith("s3."))
                reads = counts["sidecar_reads"]
                self.results.add(
                    Row(
                        f"scale-{where} {what} 1 day of {n}",
                        r.seconds,
                        None,
                        None,
                        f"sidecar reads <= {2 * in_day}",
                        reads <= 2 * in_day,
                        note=f"sidecar reads {reads}, keys listed {counts['keys_listed']}"
                        + (f", S3 requests {s3}" if where == "s3" else "")
                        + f", selected {in_day}; peak RSS {r.hwm_mb:.0f} MB",
                        detail={"counts": dict(counts), "selected": in_day, "reindex_seconds": ri.seconds},
                    )
                )

    def catalog(self) -> None:
        from archiver.catalog import Catalog, Scope

        print("== catalog lookups", flush=True)
        cats: dict[int, tuple[Catalog, list[str]]] = {}
        scope = Scope("bench", "plivo", ACCOUNT)
        for rows in (1000, 100_000):
            path = self.work / f"cat-{rows}.db"
            Catalog(str(path)).close()  # the product's schema
            ids = [f"rec-{i:08d}" for i in range(rows)]
            with sqlite3.connect(path) as db:
                db.executemany(
                    "INSERT INTO recordings (dest, provider, account, recording_id, state, started_at, "
                    "sidecar_key, sha256, bytes, attempts, updated_at) "
                    "VALUES (?,?,?,?,'archived',?,?,?,?,0,?)",
                    (
                        (*scope.key(), rid, "2024-01-01T00:00:00.000000Z", f"k/{rid}.json", "0" * 64, 1, "x")
                        for rid in ids
                    ),
                )
            rng = random.Random(1)
            cats[rows] = (Catalog(str(path)), [rng.choice(ids) for _ in range(5000)])
        # Rounds alternate between the two catalogs (A B A B): this machine's speed for the
        # same loop moved by half between runs (6.7 vs 10 us), which made a ratio of separate
        # runs anything from 0.8 to 1.9; the ratio of each round's pair held at 1.38-1.40.
        times: dict[int, list[float]] = {rows: [] for rows in cats}
        for _ in range(9):
            for rows, (cat, sample) in cats.items():
                t0 = time.perf_counter()
                for rid in sample:
                    cat.get(scope, rid)
                times[rows].append((time.perf_counter() - t0) / len(sample) * 1e6)
        for cat, _ in cats.values():
            cat.close()
        per = {rows: median(t) for rows, t in times.items()}
        ratio = median([b / a for a, b in zip(times[1000], times[100_000], strict=True)])
        self.results.add(
            Row(
                "catalog get() 100k vs 1k rows",
                per[100_000],
                per[1000],
                ratio,
                "ratio <= 1.5",
                ratio <= 1.5,
                unit="us",
                note="per lookup, medians of 9 alternating rounds; archiver = 100,000 rows, baseline = 1,000",
            )
        )


def bare_ffmpeg(t: Transcoder, src: Path, profile: Any, out: Path) -> list[str]:
    """The one ffmpeg command a user would type for ``profile``: the archiver's encoding
    arguments, without its tags."""
    argv = t.argv(str(src), "wav", profile, str(out))
    return [
        t.ffmpeg,
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(src),
        *argv[argv.index("-acodec", argv.index("-i")) :],
    ]


def synthetic_archive(n: int, day: datetime) -> tuple[list[tuple[str, bytes]], int]:
    """``n`` recordings over 60 days from 2024-01-01 in the default layout: a 0.1 s WAV each
    and its sidecar (schema archiver.sidecar/1), and the layout's record. Returns the files
    and how many start on ``day``."""
    body = audio.wav_bytes(0.1, 1)
    digest = hashlib.sha256(body).hexdigest()
    rng = random.Random(20000)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    files: list[tuple[str, bytes]] = []
    in_day = 0
    for i in range(n):
        started = start + timedelta(seconds=rng.randrange(60 * 86400))
        in_day += started.date() == day.date()
        rid = f"{rng.getrandbits(128):032x}"
        base = f"plivo/{ACCOUNT}/{started:%Y}/{started:%m}/{started:%d}/{rid}"
        stamp = started.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        doc = {
            "schema": "archiver.sidecar/1",
            "archived_at": stamp,
            "archiver_version": "0.1.0",
            "files": [
                {
                    "role": "original",
                    "profile": None,
                    "key": f"{base}.wav",
                    "format": "wav",
                    "content_type": "audio/wav",
                    "bytes": len(body),
                    "sha256": digest,
                    "duration_seconds": 0.1,
                    "sample_rate": 8000,
                    "channels": 1,
                    "bitrate": 128000,
                    "codec": "pcm_s16le",
                    "probe_error": None,
                    "tags": {},
                }
            ],
            "provider_record": {"recording_id": rid, "recording_format": "wav"},
            "recording": {
                "provider": "plivo",
                "account": ACCOUNT,
                "recording_id": rid,
                "call_id": f"call-{i}",
                "conference_name": None,
                "from_number": "14155550100",
                "to_number": "16505550100",
                "direction": None,
                "started_at": stamp,
                "ended_at": (started + timedelta(seconds=0.1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "provider_duration_seconds": 0.1,
                "state": None,
            },
            "source": {"media_url": f"http://127.0.0.1/recordings/{rid}.wav", "fetched_at": stamp},
        }
        files.append((f"{base}.wav", body))
        files.append((f"{base}.json", json.dumps(doc, indent=2, sort_keys=True).encode()))
    # The layout record every archive run writes (archiver.sidecars.record_layout): without
    # it a selection cannot trust the date folders and reads the whole archive.
    files.append((layout_key(DEFAULT_LAYOUT), (json.dumps({"layout": DEFAULT_LAYOUT}) + "\n").encode()))
    return files, in_day


def audio_seconds(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


# --- profile -------------------------------------------------------------------------------------


def profile(path: Path, work: Path) -> None:
    """The archiver side of small-local under py-spy, sampling only the thread that holds the
    GIL: the workers share one, so where it is held is where a run's time goes."""
    spy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy")
    with Simulator(recordings=300, seed=42, seconds=(25, 35)) as sim:
        warm(sim, sim.plivo)
        env = {**os.environ, **PACING, **sim.env(), "XDG_STATE_HOME": str(work / "state")}
        argv = archiver(
            "backfill",
            "--provider",
            "plivo",
            *RANGE,
            "--dest",
            str(work / "p"),
            "--catalog",
            str(work / "p.db"),
            "--concurrency",
            "4",
        )
        r = run(
            [
                spy,
                "record",
                "--nonblocking",
                "--gil",
                "--rate",
                "1000",
                "--format",
                "raw",
                "--output",
                str(path),
                "--",
                *argv,
            ],
            env,
        )
        print(r.out.strip().splitlines()[-1] if r.out.strip() else "")
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith("process ") and not f.startswith("thread ")]
        samples += n
        if frames:
            own[short(frames[-1])] += n
        for f in {short(f) for f in frames}:
            total[f] += n
    print(f"{samples} samples (the thread holding the GIL)")
    print("top by own time:")
    for f, n in own.most_common(15):
        print(f"  {100 * n / samples:5.1f}%  {f}")
    print("top by total time (function and what it calls):")
    for f, n in total.most_common(40):
        print(f"  {100 * n / samples:5.1f}%  {f}")


def breakdown(work: Path, n_pairs: int = 5) -> None:
    """small-local's CPU time by thread, archiver and bare script side by side (medians of
    ``n_pairs`` A B pairs, each run under scripts/_threadcpu.py): where the ratio comes from."""
    with Simulator(recordings=300, seed=42, seconds=(25, 35)) as sim:
        warm(sim, sim.plivo)
        env = {**os.environ, **PACING, **sim.env(), "XDG_STATE_HOME": str(work / "state")}
        lst = work / "small.json"
        media_list(sim, lst)
        wrap = [PY, str(HERE / "_threadcpu.py")]
        seen: dict[str, list[dict[str, float]]] = {"archiver": [], "bare": []}
        for i in range(n_pairs):
            for side, argv in (
                (
                    "archiver",
                    [*wrap, "-m", "archiver", "-q", "backfill", "--provider", "plivo", *RANGE]
                    + [
                        "--dest",
                        str(work / f"a{i}"),
                        "--catalog",
                        str(work / f"a{i}.db"),
                        "--concurrency",
                        "4",
                    ],
                ),
                (
                    "bare",
                    [*wrap, str(HERE / "bare_local.py"), str(lst), str(work / f"b{i}"), "--concurrency", "4"],
                ),
            ):
                out = work / f"{side}{i}.json"
                r = run(argv, env | {"BENCH_THREADCPU": str(out)})
                seen[side].append({**json.loads(out.read_text()), "wall": r.seconds})
    print(f"CPU seconds by thread, small-local (300 recordings, 4 workers), medians of {n_pairs} pairs:")
    print(f"  {'':22} {'archiver':>9} {'bare':>9}")
    keys = ["wall", "process", "start-up", "main", "archive", "list-ahead", "ThreadPoolExecutor-0"]
    keys += sorted({k for runs in seen.values() for r in runs for k in r} - set(keys))
    for key in keys:
        row = [median([r.get(key, 0.0) for r in seen[side]]) for side in ("archiver", "bare")]
        print(f"  {key:22} {row[0]:9.3f} {row[1]:9.3f}")
    print(
        "  (start-up: the main thread before it started another thread; main: after, the\n"
        "   archiver's driver; archive / ThreadPoolExecutor-0: the workers; list-ahead: listing)"
    )


# What --attribute times (scripts/_attribute.py), as (label, target), in the module that
# calls each: the driver's part, then one recording's way through a worker.
ATTRIBUTE = [
    ("driver: catalog lookup", "archiver.catalog:Catalog.get"),
    ("driver: triage", "archiver.pipeline:triage"),
    ("driver: wait for a worker", "archiver.runner:wait"),
    ("driver: remember, count, log", "archiver.runner:Tally.record"),
    ("worker: one recording, all", "archiver.pipeline:work_one"),
    ("  sidecar exists? (the sidecar rule)", "archiver.storage.local:LocalStorage.exists"),
    ("  keys (sidecar_key, build_key)", "archiver.pipeline:build_key"),
    ("  fetch, all", "archiver.media.fetch:fetch_media"),
    ("    pacing", "archiver.providers.plivo:PlivoProvider.pace_media"),
    ("    httpx send: every request, listing's too", "httpx:Client.send"),
    ("    body: hash + write", "archiver.media.fetch:_save"),
    ("  probe + copy check", "archiver.pipeline:probe_download"),
    ("    mutagen", "archiver.media.probe:_probe_source"),
    ("    the copy check", "archiver.media.probe:verified_probe"),
    ("  media into place", "archiver.storage.local:LocalStorage.put_file"),
    ("  folders durable", "archiver.pipeline:make_durable"),
    ("  sidecar: build", "archiver.pipeline:build_sidecar"),
    ("  sidecar: redact", "archiver.redact:Redactor.doc"),
    ("  sidecar: render", "archiver.pipeline:render_sidecar"),
    ("  sidecar: write", "archiver.storage.local:LocalStorage.put_bytes"),
]


def attribute(work: Path, runs: int = 5) -> None:
    """small-local's CPU time by stage, per recording (scripts/_attribute.py): the parts of
    the breakdown's driver and workers, to set beside bare_local.py's whole worker."""
    targets = ",".join(t for _, t in ATTRIBUTE)
    with Simulator(recordings=300, seed=42, seconds=(25, 35)) as sim:
        warm(sim, sim.plivo)
        env = {**os.environ, **PACING, **sim.env(), "XDG_STATE_HOME": str(work / "state")}
        lst = work / "small.json"
        media_list(sim, lst)
        seen: list[dict[str, list[float]]] = []
        bare: list[float] = []
        for i in range(runs):
            out = work / f"attr{i}.json"
            argv = [
                PY,
                str(HERE / "_attribute.py"),
                "-m",
                "archiver",
                "-q",
                "backfill",
                "--provider",
                "plivo",
            ]
            argv += [*RANGE, "--dest", str(work / f"a{i}"), "--catalog", str(work / f"a{i}.db")]
            r = run(
                [*argv, "--concurrency", "4"],
                env | {"BENCH_ATTRIBUTE": out, "BENCH_ATTRIBUTE_TARGETS": targets},
            )
            if "failed=0" not in r.out:
                sys.exit(f"archiver run not clean: {r.out[-500:]}")
            seen.append(json.loads(out.read_text()))
            cpu = work / f"bare{i}.json"
            wrap = [
                PY,
                str(HERE / "_threadcpu.py"),
                str(HERE / "bare_local.py"),
                str(lst),
                str(work / f"b{i}"),
            ]
            run([*wrap, "--concurrency", "4"], env | {"BENCH_THREADCPU": str(cpu)})
            bare.append(json.loads(cpu.read_text()).get("ThreadPoolExecutor-0", 0.0))
    print(f"CPU ms per recording by stage, small-local (300 recordings, 4 workers), medians of {runs} runs:")
    for label, target in ATTRIBUTE:
        name = target.replace(":", ".")
        per = [r.get(name, [0.0, 0])[0] * 1000 / 300 for r in seen]
        calls = median([r.get(name, [0.0, 0])[1] for r in seen])
        print(f"  {label:40} {median(per):6.2f}   ({calls:.0f} calls)")
    print(f"  {'bare_local.py: one recording, all':40} {median(bare) * 1000 / 300:6.2f}")
    print(
        "  (thread CPU, inclusive: a line's children are in it; waits are not CPU. keys: 3 sidecar\n"
        "   keys (triage, the exists check, the worker) and the media key each recording)"
    )


def short(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``, so lines of one function merge."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(file).parts
    if "site-packages" in parts:
        file = "/".join(parts[parts.index("site-packages") + 1 :])
    elif "archiver" in parts:
        file = "/".join(parts[len(parts) - 1 - parts[::-1].index("archiver") :])
    else:
        file = Path(file).name
    return f"{name} ({file})"


# --- main ----------------------------------------------------------------------------------------


def compile_archiver() -> None:
    """Byte-compile the archiver's modules, as installing its wheel does. Run from a checkout
    with PYTHONDONTWRITEBYTECODE set (CI images, some shells), every archiver process would
    compile its ~15,000 lines again (60-90 ms of start-up on 2 cores), a cost no installed
    copy pays; the baselines import only installed, compiled packages."""
    import compileall

    compileall.compile_dir(str(ROOT / "archiver"), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smaller smoke run (about two minutes)")
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument("--profile", type=Path, help="profile small-local with py-spy instead; stacks to PATH")
    ap.add_argument("--breakdown", action="store_true", help="small-local's CPU time by thread instead")
    ap.add_argument("--attribute", action="store_true", help="small-local's CPU time by stage instead")
    ap.add_argument("--only", help="comma-separated subset: small,long,repeat,transcode,scale,catalog")
    ap.add_argument("--no-loop", action="store_true", help="skip the curl + aws s3 cp loop")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # moto's and werkzeug's request logs
    compile_archiver()
    work = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    try:
        if args.profile:
            profile(args.profile, work)
            return
        if args.breakdown:
            breakdown(work)
            return
        if args.attribute:
            attribute(work)
            return
        only = (
            set(args.only.split(","))
            if args.only
            else {"small", "long", "repeat", "transcode", "scale", "catalog"}
        )
        started = time.perf_counter()
        bench = Bench(args, work)
        try:
            if "small" in only:
                bench.small(args.no_loop)
            keep = bench.long() if only & {"long", "transcode"} else None
            if "repeat" in only:
                bench.repeat()
            if "transcode" in only:
                bench.transcode(keep)
            if "scale" in only:
                bench.scale()
            if "catalog" in only:
                bench.catalog()
        finally:
            bench.moto.stop()
        elapsed = time.perf_counter() - started
        print()
        print(f"{'figure':34} {'archiver':>12} {'baseline':>12} {'ratio':>8} {'goal':>24} {'met?':>4}")
        for row in bench.results.rows:
            print(fmt_row(row))
        print(
            f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s, {os.cpu_count()} CPUs; "
            "simulator pacing "
            f"lifted to {PACING['PLIVO_REQUESTS_PER_SECOND']} req/s; medians of A B pairs"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "quick": args.quick,
                        "cpus": os.cpu_count(),
                        "seconds": elapsed,
                        "pacing": PACING,
                        "rows": [r.__dict__ for r in bench.results.rows],
                    },
                    indent=2,
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
