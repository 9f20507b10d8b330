#!/usr/bin/env python3
"""Throughput of a backfill on a local Dask cluster with 1, 2 and 4 worker processes, against
the thread pool, for a plain backfill and a transcoding one (CPU-bound), on loopback (the
bundled simulator, a local destination). Not a test: prints a table, optionally JSON.

    .venv/bin/python scripts/bench_dask.py [--recordings 200] [--workers 1,2,4] [--json PATH]

Each figure is one fresh backfill (new destination and catalog) of the same simulator range;
the cluster is started before the clock starts (its start-up is reported apart), and a first
threads run warms the simulator's media cache. Provider pacing is lifted
(PLIVO_REQUESTS_PER_SECOND=1000): what is measured is our side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime

SINCE, UNTIL = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import distributed

    from archiver import api
    from archiver.cluster import DaskExecutor
    from archiver.config import load_settings
    from archiver.sim import Simulator

    rows = []
    with Simulator(recordings=args.recordings, seed=90) as sim:
        env = sim.env() | {"PLIVO_REQUESTS_PER_SECOND": "1000"}
        os.environ.update(env)

        def one(label: str, profiles: tuple[str, ...], executor: object) -> dict[str, object]:
            work = tempfile.mkdtemp(prefix="bench-dask-")
            settings = load_settings(
                None, os.environ, {"archive.dest": f"{work}/a", "archive.catalog": f"{work}/c.db"}
            )
            start = time.monotonic()
            result = api.backfill(
                settings,
                "plivo",
                SINCE,
                UNTIL,
                options=api.Options(profiles=profiles),
                executor=executor,  # type: ignore[arg-type]
            )
            elapsed = time.monotonic() - start
            row = {
                "executor": label,
                "job": "transcode mp3" if profiles else "plain",
                "archived": result.counts["archived"],
                "seconds": round(elapsed, 2),
                "recordings_per_s": round(result.counts["archived"] / elapsed, 1),
            }
            print(
                f"{row['executor']:>14}  {row['job']:>13}  {row['archived']:>5}  {row['seconds']:>7}  "
                f"{row['recordings_per_s']:>6}",
                flush=True,
            )
            return row

        print("warming up (the simulator encodes each recording's media once)...", flush=True)
        one("warm-up", (), None)
        print(f"{'executor':>14}  {'job':>13}  {'recs':>5}  {'seconds':>7}  {'rec/s':>6}")
        for profiles in ((), ("mp3-mono-32k",)):
            rows.append(one("threads", profiles, None))
            for n in [int(x) for x in args.workers.split(",")]:
                t0 = time.monotonic()
                with (
                    distributed.LocalCluster(
                        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", env=env
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    started = time.monotonic() - t0
                    row = one(f"dask x{n}", profiles, DaskExecutor(client))
                    row["cluster_start_s"] = round(started, 2)
                    rows.append(row)
    print(f"(cpu count {os.cpu_count()}; Python {sys.version.split()[0]})")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
