#!/usr/bin/env python3
"""Run the archiver with chosen functions timed, for scripts/bench.py --attribute:

    BENCH_ATTRIBUTE=out.json BENCH_ATTRIBUTE_TARGETS=mod:qual,... \\
        python scripts/_attribute.py -m archiver backfill ...

Each target (``archiver.pipeline:probe_download``, ``httpx:Client.send``) is replaced, in the
module named, by a wrapper that adds the CPU time of the thread calling it (user + system,
``time.thread_time``) while the call runs, and counts calls. A function another module
imported by name is timed where it is called from: name that module (``archiver.pipeline``
for what the pipeline imported). Times are inclusive (what the function calls is in them);
a recursive call is timed once, at its outermost frame. Waiting (for the GIL, the network, a
lock) is not CPU and is not counted. At exit, ``out.json`` maps ``module.qual`` to
``[seconds, calls]``.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import runpy
import sys
import threading
import time
from collections import Counter
from typing import Any

OUT = os.environ["BENCH_ATTRIBUTE"]
seconds: Counter[str] = Counter()
calls: Counter[str] = Counter()
lock = threading.Lock()


def wrap(target: str) -> None:
    module_name, _, qual = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, attr = qual.split(".")
    for part in path:
        owner = getattr(owner, part)
    fn = getattr(owner, attr)
    name = f"{module_name}.{qual}"
    inside = threading.local()

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        if getattr(inside, "on", False):
            return fn(*args, **kwargs)
        inside.on = True
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.thread_time() - start
            inside.on = False
            with lock:  # += on a Counter is several bytecodes: threads would lose updates
                seconds[name] += spent
                calls[name] += 1

    setattr(owner, attr, timed)


def write() -> None:
    with open(OUT, "w") as fh:
        json.dump({k: [seconds[k], calls[k]] for k in seconds}, fh, indent=1)


def main() -> None:
    for target in filter(None, os.environ.get("BENCH_ATTRIBUTE_TARGETS", "").split(",")):
        wrap(target)
    atexit.register(write)
    args = sys.argv[1:]
    if args[:1] != ["-m"] or len(args) < 2:
        sys.exit("usage: _attribute.py -m MODULE [ARGS...]")
    sys.argv = [args[1], *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
