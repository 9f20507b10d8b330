#!/usr/bin/env python3
"""Run a Python program and write where its CPU time went, by thread, for scripts/bench.py
--breakdown:

    BENCH_THREADCPU=out.json python scripts/_threadcpu.py -m archiver backfill ...
    BENCH_THREADCPU=out.json python scripts/_threadcpu.py scripts/bare_local.py ...

At exit, ``out.json`` holds the CPU seconds (user + system) of: the main thread before it
started any other thread (``start-up``: interpreter, imports, configuration, the catalog and
the destination opened) and after (``main``: the archiver's driver loop, the bare script's
``pool.map``), every other thread by its name without the number (``archive`` for the
archiver's workers, ``list-ahead`` for its listing, ``ThreadPoolExecutor-0`` for the bare
script's workers), and the whole process. Threads still running at exit are not counted.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import threading
import time
from collections import Counter

OUT = os.environ["BENCH_THREADCPU"]
MAIN = threading.main_thread().ident
cpu: Counter[str] = Counter()
first: list[float] = []  # the main thread's CPU time when the first other thread began
lock = threading.Lock()
_run = threading.Thread.run


def _main_cpu() -> float:
    assert MAIN is not None
    return time.clock_gettime(time.pthread_getcpuclockid(MAIN))


def run(self: threading.Thread) -> None:
    with lock:
        if not first:
            first.append(_main_cpu())
    try:
        _run(self)
    finally:
        spent = time.thread_time()
        with lock:
            cpu[self.name.rsplit("_", 1)[0]] += spent


threading.Thread.run = run  # type: ignore[method-assign]


@atexit.register
def _write() -> None:
    total = time.thread_time()
    before = first[0] if first else total
    doc = {"start-up": before, "main": total - before, **cpu, "process": time.process_time()}
    with open(OUT, "w") as fh:
        json.dump(doc, fh)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["-m"]:
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")
