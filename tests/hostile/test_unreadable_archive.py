"""An archive the command may not read is not an empty archive.

Read as a user without the right (the archive another user's, 0600 files; a folder 0700),
every sidecar "could not be read" and every file then "no sidecar lists": verify called the
archive empty, its files orphans, its coverage 100 %, and advised removing them; reindex would
have dropped the catalog's record of the destination. A read the destination refuses (no
permission, a dead disk) stops the command (exit 3) naming what it could not read.

The tests run as root in CI, whom file modes do not stop: there, each command runs in a thread
without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (Linux keeps capabilities per thread, and the
threads such a thread starts inherit its set), so the modes apply to it as to any user.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from archiver.sim import Simulator

T = TypeVar("T")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def as_a_user(fn: Callable[[], T]) -> T:
    """``fn()`` with file modes applying to it (see the module's docstring)."""
    if os.geteuid() != 0:
        return fn()
    libc = ctypes.CDLL(None, use_errno=True)
    got: dict[str, Any] = {}

    def body() -> None:
        header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
        if libc.capget(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capget")
        data[0].effective &= ~_DAC
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
        try:
            got["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            got["error"] = exc

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if "error" in got:
        raise got["error"]
    return got["value"]  # type: ignore[no-any-return]


@pytest.fixture
def archive(backfill, cli, tmp_path: Path, use_sim) -> Iterator[tuple[Path, str]]:
    with Simulator(recordings=6, seed=41) as sim:
        use_sim(sim)
        dest, catalog = tmp_path / "a", str(tmp_path / "cat.db")
        assert backfill("plivo", str(dest), "--catalog", catalog).exit_code == 0
        assert as_a_user(next(dest.rglob("*.json")).read_bytes)  # readable until made not
        yield dest, catalog
    for path in dest.rglob("*"):  # let pytest clean it up
        os.chmod(path, 0o700)


def sidecar_files(dest: Path) -> list[Path]:
    return [p for p in dest.rglob("*.json") if "_custody" not in p.parts and "_layouts" not in p.parts]


def test_verify_of_sidecars_it_may_not_read_stops_and_advises_nothing(cli, archive) -> None:
    dest, catalog = archive
    for side in sidecar_files(dest):
        side.chmod(0)
    r = as_a_user(lambda: cli("verify", "--dest", str(dest), "--catalog", catalog, "--json"))
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    assert "cannot read the archive at" in doc["error"] and "Permission denied" in doc["error"]
    assert "orphan" not in r.output and "remove" not in r.output and "coverage" not in r.output
    r = as_a_user(lambda: cli("transcode", "--dest", str(dest), "--profile", "flac"))
    assert r.exit_code == 3 and "cannot read the archive at" in r.stderr, r.output
    assert not list(dest.rglob("*.flac.flac"))


def test_verify_and_export_of_a_folder_they_may_not_enter_stop(cli, archive, tmp_path: Path) -> None:
    dest, catalog = archive
    day = sidecar_files(dest)[0].parent
    day.chmod(0)
    r = as_a_user(lambda: cli("verify", "--dest", str(dest), "--catalog", catalog))
    assert r.exit_code == 3 and f"cannot list {day}" in r.stderr, r.output
    assert "holds no recordings" not in r.output and "repair:" not in r.output
    out = tmp_path / "audit.zip"
    r = as_a_user(lambda: cli("export", "--dest", str(dest), "--out", str(out)))
    assert r.exit_code == 3 and "Permission denied" in r.stderr and not out.exists(), r.output


def test_reindex_of_an_archive_it_may_not_read_keeps_the_catalogs_record(cli, backfill, archive) -> None:
    dest, catalog = archive
    for side in sidecar_files(dest):
        side.chmod(0)
    r = as_a_user(lambda: cli("reindex", "--dest", str(dest), "--catalog", catalog))
    assert r.exit_code == 3 and "cannot read the archive" in r.stderr, r.output
    for side in sidecar_files(dest):
        side.chmod(0o600)
    again = backfill("plivo", str(dest), "--catalog", catalog)  # the catalog still knows them all
    assert again.exit_code == 0 and "archived=0" in again.output and "skipped=6" in again.output


def test_files_of_a_sidecar_that_cannot_be_used_are_kept_not_called_orphans(cli, archive) -> None:
    dest, catalog = archive
    damaged = sidecar_files(dest)[0]
    damaged.write_text("{ not json")  # its two files are listed by nothing readable now
    r = cli("verify", "--dest", str(dest), "--catalog", catalog, "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["counts"]["unreadable"] == 1 and doc["counts"]["orphaned"] == 0
    assert doc["counts"]["unlisted"] >= 1
    (advice,) = [line for line in doc["repair_commands"] if "no usable sidecar" in line]
    assert "keep them" in advice and "remove" not in advice
    assert doc["repair_commands"][-1] == advice  # after the sidecar's own line


@pytest.mark.parametrize("out", ["audit.zip", "audit-folder"])
def test_export_to_a_place_it_may_not_write_is_a_clear_error(cli, archive, tmp_path: Path, out: str) -> None:
    dest, catalog = archive
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)  # nobody may write in it
    r = as_a_user(lambda: cli("export", "--dest", str(dest), "--out", str(locked / out), "--json"))
    doc = json.loads(r.stdout)  # not a traceback
    assert r.exit_code == doc["exit_code"] == 2 and "cannot write there: Permission denied" in doc["error"]
    assert list(locked.iterdir()) == []
    r = cli("export", "--dest", str(dest), "--out", "/proc/no-export-here.zip")
    assert r.exit_code == 2 and "--out /proc/no-export-here.zip: cannot write there" in r.stderr
