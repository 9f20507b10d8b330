#!/usr/bin/env python3
"""The bare work of archiving into a folder, for scripts/bench.py to compare the archiver with.

    python scripts/bare_local.py LIST.json DEST [--concurrency 4]

LIST.json is ``[{"url": ..., "key": ..., "meta": {...}}, ...]``. For each item, on a pool of
threads sharing one HTTP client: GET (redirects followed), SHA-256 and size while streaming
into a temp file beside the target, fsync, rename; then a small JSON file (hash, size, url,
meta) the same way. Nothing else: no listing, probing, retries, catalog or checks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

CHUNK = 64 * 1024


def write_atomic(path: str, chunks: Any) -> None:
    """Write ``chunks`` to a temp file in ``path``'s folder, fsync, rename into place."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def one(client: httpx.Client, dest: str, item: dict[str, Any]) -> int:
    target = os.path.join(dest, item["key"])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with client.stream("GET", item["url"]) as resp:
        resp.raise_for_status()

        def body() -> Any:
            nonlocal size
            for chunk in resp.iter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        write_atomic(target, body())
    doc = {
        "key": item["key"],
        "bytes": size,
        "sha256": digest.hexdigest(),
        "url": item["url"],
        **item["meta"],
    }
    write_atomic(os.path.splitext(target)[0] + ".json", [json.dumps(doc, indent=2, sort_keys=True).encode()])
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("list")
    ap.add_argument("dest")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    with open(args.list) as fh:
        items = json.load(fh)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    client = httpx.Client(follow_redirects=True, limits=limits, timeout=60)
    with client, ThreadPoolExecutor(args.concurrency) as pool:
        total = sum(pool.map(lambda item: one(client, args.dest, item), items))
    print(f"files={len(items)} bytes={total}")


if __name__ == "__main__":
    main()
