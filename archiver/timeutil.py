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
# Dates a user may give: no call recording predates 1970 (Plivo counts in epoch ms), and a
# range must leave room for window and overlap arithmetic (datetime.min/max overflow).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
LONGEST = timedelta(days=100 * 366)  # a duration longer than any range between those dates
# A range split into more windows than this is a typo (--window 1s over years): each window
# is at least one listing request and one catalog row.
MAX_WINDOWS = 100_000


def _amount(text: str, m: re.Match[str]) -> timedelta:
    """The timedelta a relative form names; ConfigError when it is beyond :data:`LONGEST`."""
    try:
        value = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    except OverflowError:
        value = timedelta.max
    if value > LONGEST:
        raise ConfigError(f"bad duration {text!r}: longer than 100 years")
    return value


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d``, ``1w`` into a positive timedelta (at most
    100 years)."""
    m = _RELATIVE.match(text.strip())
    if not m or text.strip().startswith("-"):
        raise ConfigError(f"bad duration {text!r}: use a number and a unit, like 2h, 1d or 7d")
    value = _amount(text, m)
    if value <= timedelta(0):
        raise ConfigError(f"bad duration {text!r}: must be more than zero")
    return value


def parse_when(text: str, *, now: datetime) -> datetime:
    """Parse a user's date: ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS][offset]`` or ``-24h``/``-7d``.

    Naive times are UTC. Relative forms count back from ``now``.
    """
    s = text.strip()
    m = _RELATIVE.match(s)
    try:
        if m and s.startswith("-"):
            value = now - _amount(text, m)
        else:
            value = as_utc(datetime.fromisoformat(s.replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # OverflowError: an offset that moves past year 1
        raise ConfigError(
            f"bad date {text!r}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC unless an offset "
            "is given) or a relative form like -24h or -7d"
        ) from None
    if not EARLIEST <= value < LATEST:
        raise ConfigError(f"bad date {text!r}: must be between 1970-01-01 and 9000-01-01")
    return value


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
    v = as_utc(value).replace(tzinfo=None)  # isoformat: a third of strftime's cost
    return v.isoformat(timespec="milliseconds" if v.microsecond else "seconds") + "Z"


def check_window_count(since: datetime, until: datetime, size: timedelta) -> int:
    """How many windows of ``size`` split ``[since, until)``; ConfigError past
    :data:`MAX_WINDOWS`, suggesting a larger ``--window``."""
    if size <= timedelta(0):
        raise ValueError("window size must be positive")
    count = -(-(until - since) // size) if until > since else 0
    if count > MAX_WINDOWS:
        fits = int(((until - since) / MAX_WINDOWS).total_seconds()) + 1
        raise ConfigError(
            f"{iso_z(since)} to {iso_z(until)} in windows of {size} is {count} windows, more than "
            f"{MAX_WINDOWS}: use a larger --window (at least {fits}s; 1d is the default)"
        )
    return count


def windows(since: datetime, until: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Split the half-open range ``[since, until)`` into consecutive windows of at most ``size``
    (ConfigError when that is more than :data:`MAX_WINDOWS`, checked before the first)."""
    check_window_count(since, until, size)
    return _windows(since, until, size)


def _windows(since: datetime, until: datetime, size: timedelta) -> Iterator[tuple[datetime, datetime]]:
    start = since
    while start < until:
        end = min(start + size, until)
        yield start, end
        start = end
