#!/usr/bin/env python3
"""``archiver`` with counters, for scripts/bench.py: how many sidecars and files a command
reads, keys it lists, and S3 requests it makes (by operation), written as JSON to
$BENCH_COUNTS at exit. The counters wrap the storage classes from outside; the product is
unchanged.

    BENCH_COUNTS=counts.json python scripts/_counting_cli.py export --dest ... --out ...
"""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import botocore.client

from archiver.cli import main
from archiver.storage.local import LocalStorage
from archiver.storage.s3 import S3Storage

counts: Counter[str] = Counter()


def _wrap(cls: Any) -> None:
    open_read, list_keys = cls.open_read, cls.list_keys

    def counted_open(self: Any, key: str) -> Any:
        counts["sidecar_reads" if key.endswith(".json") else "file_reads"] += 1
        return open_read(self, key)

    def counted_list(self: Any, prefix: str = "") -> Iterator[str]:
        counts["list_calls"] += 1
        for key in list_keys(self, prefix):
            counts["keys_listed"] += 1
            yield key

    cls.open_read, cls.list_keys = counted_open, counted_list


_wrap(LocalStorage)
_wrap(S3Storage)
_api_call = botocore.client.BaseClient._make_api_call


def _counted_call(self: Any, operation: str, params: Any) -> Any:
    counts[f"s3.{operation}"] += 1
    return _api_call(self, operation, params)


botocore.client.BaseClient._make_api_call = _counted_call  # type: ignore[method-assign]


@atexit.register
def _write() -> None:
    with open(os.environ["BENCH_COUNTS"], "w") as fh:
        json.dump(dict(counts), fh)


if __name__ == "__main__":
    main(prog_name="archiver")
