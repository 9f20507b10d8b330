#!/usr/bin/env python3
"""The bare work of archiving into S3, for scripts/bench.py to compare the archiver with.

    python scripts/bare_s3.py LIST.json s3://BUCKET/PREFIX [--concurrency 4]

LIST.json as for bare_local.py. For each item, on a pool of threads sharing one HTTP client
and one boto3 client: GET (redirects followed) into a temp file with SHA-256 and size while
streaming, ``upload_file`` (boto3's defaults), then a small JSON object with ``put_object``.
Endpoint and credentials come from the AWS_* environment, as for the archiver.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import httpx

CHUNK = 64 * 1024


def one(client: httpx.Client, s3: Any, bucket: str, prefix: str, item: dict[str, Any]) -> int:
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile() as tmp:
        with client.stream("GET", item["url"]) as resp:
            resp.raise_for_status()
            for chunk in resp.iter_bytes(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                tmp.write(chunk)
        tmp.flush()
        key = f"{prefix}{item['key']}"
        s3.upload_file(tmp.name, bucket, key, ExtraArgs={"ContentType": "audio/mpeg"})
    doc = {
        "key": item["key"],
        "bytes": size,
        "sha256": digest.hexdigest(),
        "url": item["url"],
        **item["meta"],
    }
    s3.put_object(
        Bucket=bucket,
        Key=os.path.splitext(key)[0] + ".json",
        Body=json.dumps(doc, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("list")
    ap.add_argument("dest")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    bucket, _, prefix = args.dest.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    with open(args.list) as fh:
        items = json.load(fh)
    s3 = boto3.client("s3")
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    client = httpx.Client(follow_redirects=True, limits=limits, timeout=60)
    with client, ThreadPoolExecutor(args.concurrency) as pool:
        total = sum(pool.map(lambda item: one(client, s3, bucket, prefix, item), items))
    print(f"files={len(items)} bytes={total}")


if __name__ == "__main__":
    main()
