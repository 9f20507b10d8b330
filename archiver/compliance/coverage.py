"""Sampled verification with coverage: which files a ``verify --sample`` reads, and how much
of the archive has been proven unaltered lately. Pure functions over the catalog's record of
each file's last verification (:class:`archiver.catalog.Verified`).

A sample reads, in this order: every file whose last check failed (altered, unreadable...:
re-read every run until it passes, so a finding never drops out of the reports unseen), then
the files never verified (or whose sidecar's SHA-256 changed since), then the least recently
verified, up to the sample's size. So ``verify --sample 3%`` every night reads every file
within 34 nights, and the coverage figures prove it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.catalog import Verified
from archiver.errors import ConfigError
from archiver.timeutil import iso_z

PERIODS = (30, 90, 365)  # days: coverage is the share of files verified ok within each
_SAMPLE = re.compile(r"^(\d+(?:\.\d+)?)%$|^(\d+)$")

Job = tuple[str, dict[str, Any]]  # (recording id, the sidecar's file entry)


@dataclass(frozen=True)
class Sample:
    """How much one sampled run reads: a share of the files (``percent``) or a number."""

    percent: float | None = None
    count: int | None = None

    def size(self, total: int) -> int:
        """How many of ``total`` files: a share rounds up (3% of 10 files is 1, never 0)."""
        if self.percent is not None:
            return min(total, math.ceil(total * self.percent / 100))
        return min(total, self.count or 0)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.count}"


def parse_sample(text: str) -> Sample:
    """``10%``, ``2.5%`` (of the selected files) or ``500`` (files); ConfigError otherwise."""
    m = _SAMPLE.match(text.strip())
    if m and m.group(1) is not None and 0 < float(m.group(1)) <= 100:
        return Sample(percent=float(m.group(1)))
    if m and m.group(2) is not None and int(m.group(2)) > 0:
        return Sample(count=int(m.group(2)))
    raise ConfigError(
        f"bad --sample {text!r}: use a share like 10% (more than 0, at most 100%) or a number of files"
    )


def last_check(history: Mapping[str, Verified], key: str, sha256: str) -> Verified | None:
    """The file's last verification, if it was against the SHA-256 its sidecar holds now."""
    seen = history.get(key)
    return seen if seen is not None and seen.sha256 == sha256 else None


def pick(jobs: list[Job], history: Mapping[str, Verified], sample: Sample) -> list[Job]:
    """The files a sampled run reads (in the order given): failing ones, then never verified,
    then least recently verified, ``sample.size`` in all (more only when more are failing)."""

    def order(job: Job) -> tuple[int, datetime | None, str]:
        seen = last_check(history, job[1]["key"], job[1]["sha256"])
        if seen is None:
            return (1, None, job[1]["key"])
        return (0 if seen.result != "ok" else 2, seen.verified_at, job[1]["key"])

    def key(job: Job) -> tuple[int, float, str]:
        rank, at, name = order(job)
        return (rank, at.timestamp() if at else 0.0, name)

    ranked = sorted(jobs, key=key)
    failing = [j for j in ranked if order(j)[0] == 0]
    chosen = {id(j) for j in ranked[: max(sample.size(len(jobs)), len(failing))]}
    return [j for j in jobs if id(j) in chosen]


def coverage(
    files: Iterable[tuple[str, str]], history: Mapping[str, Verified], now: datetime
) -> dict[str, Any]:
    """How much of ``files`` (key, SHA-256) is proven: the share verified ok within each of
    :data:`PERIODS`, how many were never verified (against their current SHA-256), how many
    failed their last check, and the oldest last verification (``None`` when none is)."""
    total = 0
    within = dict.fromkeys(PERIODS, 0)
    never = failing = 0
    oldest: datetime | None = None
    for key, sha in files:
        total += 1
        seen = last_check(history, key, sha)
        if seen is None:
            never += 1
            continue
        if oldest is None or seen.verified_at < oldest:
            oldest = seen.verified_at
        if seen.result != "ok":
            failing += 1
            continue
        for days in PERIODS:
            if seen.verified_at >= now - timedelta(days=days):
                within[days] += 1
    return {
        "files": total,
        "verified_within": {f"{d}d": round(n / total, 4) if total else 1.0 for d, n in within.items()},
        "never_verified": never,
        "failing": failing,
        "oldest_verification": iso_z(oldest),
    }


def describe(cov: Mapping[str, Any]) -> str:
    """The coverage line verify prints."""
    shares = " ".join(f"{p}={100 * v:.1f}%" for p, v in cov["verified_within"].items())
    oldest = cov["oldest_verification"] or "none"
    never = f" never_verified={cov['never_verified']}" if cov["never_verified"] else ""
    return f"coverage: files={cov['files']} verified ok within {shares}; oldest={oldest}{never}"
