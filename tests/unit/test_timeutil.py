from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archiver.errors import ConfigError
from archiver.timeutil import iso_z, parse_duration, parse_provider_time, parse_when, windows

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("2024-01-02T03:04", datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05+02:00", datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("-24h", NOW - timedelta(hours=24)),
        ("-7d", NOW - timedelta(days=7)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "", "-5x"])
def test_parse_when_rejects_with_a_hint(text: str) -> None:
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_when(text, now=NOW)


def test_parse_duration() -> None:
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("90m") == timedelta(minutes=90)
    for bad in ("0d", "-1d", "day", "1y"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-08-05 16:15:15.852059+05:30", datetime(2014, 8, 5, 10, 45, 15, 852059, tzinfo=UTC)),
        ("2012-02-04T23:33:08.079231", datetime(2012, 2, 4, 23, 33, 8, 79231, tzinfo=UTC)),
        ("2017-01-01T10:00:00Z", datetime(2017, 1, 1, 10, tzinfo=UTC)),
        ("2017-01-01T10:00:00.123Z", datetime(2017, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_parse_provider_time(text: str, expected: datetime) -> None:
    assert parse_provider_time(text) == expected


def test_iso_z_keeps_milliseconds_only_when_present() -> None:
    assert iso_z(datetime(2024, 1, 1, 1, 2, 3, tzinfo=UTC)) == "2024-01-01T01:02:03Z"
    assert iso_z(datetime(2024, 1, 1, 1, 2, 3, 45000, tzinfo=UTC)) == "2024-01-01T01:02:03.045Z"


def test_windows_cover_the_range_half_open_without_gaps() -> None:
    since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, 6, tzinfo=UTC)
    parts = list(windows(since, until, timedelta(days=30)))
    assert parts[0][0] == since and parts[-1][1] == until
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    assert all(hi - lo <= timedelta(days=30) for lo, hi in parts)
    assert len(parts) == 3
