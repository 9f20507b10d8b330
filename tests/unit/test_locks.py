"""The run lock and the destination lock: real flocks on real files (no process needed to
hold one: two open files of one process conflict as two processes would)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.errors import LockedError
from archiver.locking import DestLock, RunLock


def test_runs_of_two_accounts_share_a_destination_but_not_with_a_reindex(tmp_path: Path) -> None:
    catalog = str(tmp_path / "cat.db")
    with RunLock(catalog, "file:///a", "plivo", "MA1"), RunLock(catalog, "file:///a", "plivo", "MA2"):
        with pytest.raises(LockedError, match="a run is archiving into file:///a"):
            DestLock(catalog, "file:///a", exclusive=True).__enter__()
        with DestLock(catalog, "file:///b", exclusive=True):  # another destination: free
            pass
    reindex = pytest.raises(LockedError, match="a reindex of file:///a is rebuilding")
    with DestLock(catalog, "file:///a", exclusive=True), reindex:  # the runs are over
        RunLock(catalog, "file:///a", "plivo", "MA1").__enter__()
    with RunLock(catalog, "file:///a", "plivo", "MA1"):  # and the reindex
        pass


def test_a_refused_run_lock_leaves_the_destination_free(tmp_path: Path) -> None:
    catalog = str(tmp_path / "cat.db")
    with RunLock(catalog, "file:///a", "plivo", "MA1"), pytest.raises(LockedError, match="another run"):
        RunLock(catalog, "file:///a", "plivo", "MA1").__enter__()
    with DestLock(catalog, "file:///a", exclusive=True):  # nothing of the refused one held on
        pass
