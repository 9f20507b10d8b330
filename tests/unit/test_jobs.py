"""The planners are pure: a command becomes data (work units) before anything runs."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from archiver.errors import ConfigError
from archiver.jobs import REMEMBERED_SLACK, Ids, Remembered, Window, plan_backfill, plan_fetch, plan_run

D = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_backfill_is_windows_after_the_remembered_ones() -> None:
    job = plan_backfill(D, D + 3 * DAY, DAY, date_filter=True, revisit=False)
    assert job.units[0] == Remembered(D - REMEMBERED_SLACK, D + 3 * DAY, report_given_up=True)
    assert job.windows == (Window(D, D + DAY), Window(D + DAY, D + 2 * DAY), Window(D + 2 * DAY, D + 3 * DAY))
    assert job.finish_windows and job.skip_finished and job.watermark is None
    # Catapult cannot filter by date: one walk, no slack
    one = plan_backfill(D, D + 3 * DAY, DAY, date_filter=False, revisit=True)
    assert one.windows == (Window(D, D + 3 * DAY),) and one.units[0] == Remembered(D, D + 3 * DAY, False)
    assert not one.skip_finished


def test_units_are_plain_data() -> None:
    job = plan_backfill(D, D + 2 * DAY, DAY, date_filter=True, revisit=False)
    doc = json.dumps(dataclasses.asdict(job), default=str)  # serialisable: strings, dates, ints
    assert "2024-01-02 00:00:00+00:00" in doc
    assert plan_fetch(("a", "b", "a")).units == (Ids(("a", "b", "a")),)  # the run drops the second


def test_run_starts_at_the_watermark_minus_overlap_and_ignores_since() -> None:
    now = D + 2 * DAY
    first = plan_run(mark=None, since=D, now=now, overlap=timedelta(hours=2), date_filter=True, scope="s")
    assert first.windows[0].since == D and first.windows[-1].until == now
    assert first.watermark is not None and first.watermark.previous is None
    later = plan_run(mark=D + DAY, since=D, now=now, overlap=timedelta(hours=2), date_filter=True, scope="s")
    assert later.windows[0].since == D + DAY - timedelta(hours=2)
    assert isinstance(later.units[0], Remembered) and later.units[0].since is None  # every remembered one


@pytest.mark.parametrize(
    ("mark", "since", "message"),
    [(None, None, "needs --since"), (None, D + 9 * DAY, "in the future"), (D + 9 * DAY, None, "after now")],
)
def test_run_refuses_what_cannot_be_planned(mark, since, message) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_run(mark=mark, since=since, now=D + DAY, overlap=timedelta(hours=2), date_filter=True, scope="s")
