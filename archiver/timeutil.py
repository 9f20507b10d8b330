"""Date and duration parsing: pure functions, all results timezone-aware UTC."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from archiver.errors import ConfigError


def _system_clock() -> datetime:
    return datetime.now(UTC)


# The one wall clock behind every decision that depends on "now": range ends, relative
# dates, deletion and retention cutoffs. Tests freeze it (tests/conftest.py ``frozen_now``).
clock: Callable[[], datetime] = _system_clock


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, from :data:`clock`."""
    return clock()


_RELATIVE = re.compile(r"^-?(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` into a positive timedelta."""
    m = _RELATIVE.match(text.strip())
    if not m or text.strip().startswith("-"):
        raise ConfigError(f"bad duration {text!r}: use a number and a unit, like 2h, 1d or 7d")
    value = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if value <= timedelta(0):
        raise ConfigError(f"bad duration {text!r}: must be more than zero")
    return value


def parse_when(text: str, *, now: datetime) -> datetime:
    """Parse a user's date: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS][offset]`` or ``-24h``/``-7d``.

    Naive times are UTC. Relative forms count back from ``now``.
    """
    s = text.strip()
    m = _RELATIVE.match(s)
    if m and s.startswith("-"):
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"bad date {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC unless an offset "
            "is given) or a relative form like -24h or -7d"
        ) from None
    return as_utc(value)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_provider_time(text: str | None) -> datetime | None:
    """Parse a provider timestamp (ISO-8601 with ``Z``, an offset, a space, or nothing).

    ``2014-08-05 16:15:15.852059+05:30``, ``2012-02-04T23:33:08.079231`` (read as UTC),
    ``2017-01-01T10:00:00Z``, ``2017-01-01T10:00:00.123Z``. Returns None for empty input and
    raises ValueError for text that is not a time.
    """
    if text is None or not str(text).strip():
        return None
    s = str(text).strip().replace("Z", "+00:00")
    return as_utc(datetime.fromisoformat(s))


def lenient_time(text: object) -> datetime | None:
    """Like :func:`parse_provider_time`, but None for anything unreadable: a recording with no
    usable time is still listed, and fails later by id with a reason, instead of breaking the
    listing of every other recording."""
    try:
        return parse_provider_time(text if isinstance(text, str) else None)
    except ValueError:
        return None


def iso_z(value: datetime | None) -> str | None:
    """Format as ISO-8601 UTC with a ``Z``, milliseconds only when present."""
    if value is None:
        return None
    v = as_utc(value)
    if v.microsecond:
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
    return v.strftime("%Y-%m-%dT%H:%M:%SZ")


def windows(since: datetime, until: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Split the half-open range ``[since, until)`` into consecutive windows of at most ``size``."""
    if size <= timedelta(0):
        raise ValueError("window size must be positive")
    start = since
    while start < until:
        end = min(start + size, until)
        yield start, end
        start = end
