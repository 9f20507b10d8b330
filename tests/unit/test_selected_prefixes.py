"""Which folders a selection reaches under a layout (sidecars.selected_prefixes): pure, with the
folder listing passed in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

from archiver.models import DEFAULT_LAYOUT
from archiver.sidecars import Selection, selected_prefixes


class Folders:
    def __init__(self, tree: dict[str, list[str]]) -> None:
        self.tree = tree
        self.asked: list[str] = []

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        self.asked.append(prefix)
        yield from self.tree.get(prefix, [])


TREE = Folders({"": ["catapult", "plivo"], "catapult/": ["u-1"], "plivo/": ["MA1", "MA2"]})


def day(d: int, h: int = 0) -> datetime:
    return datetime(2024, 1, d, h, tzinfo=UTC)


def test_one_day_reaches_that_day_of_every_provider_account() -> None:
    got = selected_prefixes(DEFAULT_LAYOUT, Selection(since=day(15), until=day(16)), TREE)
    assert got == ["catapult/u-1/2024/01/15/", "plivo/MA1/2024/01/15/", "plivo/MA2/2024/01/15/"]


def test_a_provider_is_named_not_listed_and_partial_days_count_whole() -> None:
    folders = Folders({"plivo/": ["MA1"]})
    sel = Selection(since=day(15, 23), until=day(17, 1), provider="plivo")
    got = selected_prefixes(DEFAULT_LAYOUT, sel, folders)
    assert got == ["plivo/MA1/2024/01/15/", "plivo/MA1/2024/01/16/", "plivo/MA1/2024/01/17/"]
    assert folders.asked == ["plivo/"]


def test_dates_are_taken_in_utc() -> None:
    # 2024-01-16 01:00 at +05:00 is 2024-01-15 20:00 UTC: filed under the 15th.
    plus5 = timezone(timedelta(hours=5))
    sel = Selection(
        since=datetime(2024, 1, 16, 1, tzinfo=plus5), until=datetime(2024, 1, 16, 2, tzinfo=plus5)
    )
    assert selected_prefixes(DEFAULT_LAYOUT, sel, TREE) == [
        "catapult/u-1/2024/01/15/",
        "plivo/MA1/2024/01/15/",
        "plivo/MA2/2024/01/15/",
    ]


def test_nothing_narrows_without_dates_or_a_provider() -> None:
    assert selected_prefixes(DEFAULT_LAYOUT, Selection(), TREE) is None
    assert selected_prefixes(DEFAULT_LAYOUT, Selection(call_id="c-1"), TREE) is None
    assert selected_prefixes(DEFAULT_LAYOUT, Selection(since=day(15)), TREE) is None  # open range
    assert selected_prefixes(None, Selection(since=day(15), until=day(16)), TREE) is None


def test_narrowing_stops_at_a_folder_it_cannot_tell() -> None:
    sel = Selection(since=day(15), until=day(16), provider="plivo")
    # A folder of call ids before the dates: the provider narrows, the dates cannot.
    assert selected_prefixes("{provider}/{call_id}/{started:%Y}/{recording_id}.{ext}", sel, TREE) == [
        "plivo/"
    ]
    # Without a folder listing, an {account} folder cannot be enumerated.
    assert selected_prefixes(DEFAULT_LAYOUT, sel, None) == ["plivo/"]


def test_other_date_layouts() -> None:
    sel = Selection(since=day(30, 22), until=datetime(2024, 2, 1, 3, tzinfo=UTC))
    month = "archive/{started:%Y-%m}/{recording_id}.{ext}"
    assert selected_prefixes(month, sel, None) == ["archive/2024-01/", "archive/2024-02/"]
    hourly = "{started:%Y%m%d}/{started:%H}/{recording_id}.{ext}"
    got = selected_prefixes(hourly, Selection(since=day(15, 22), until=day(16, 1)), None)
    assert got == ["20240115/22/", "20240115/23/", "20240116/00/"]


def test_a_range_too_long_to_walk_lists_everything_instead() -> None:
    sel = Selection(since=datetime(1, 1, 1, tzinfo=UTC), until=datetime(9999, 1, 1, tzinfo=UTC))
    assert selected_prefixes(DEFAULT_LAYOUT, sel, TREE) is None


def test_a_long_range_walks_months_when_days_would_be_too_many() -> None:
    sel = Selection(since=datetime(2000, 1, 1, tzinfo=UTC), until=datetime(2020, 1, 1, tzinfo=UTC))
    got = selected_prefixes(DEFAULT_LAYOUT, sel, Folders({"": ["plivo"], "plivo/": ["MA1"]}))
    assert got is not None and len(got) == 240
    assert got[0] == "plivo/MA1/2000/01/" and got[-1] == "plivo/MA1/2019/12/"
