"""Staging: where a run keeps files in flight (downloads, renditions, writes before their
rename), and the one home of temp-file naming.

Every run gets its own folder under a parent that many runs share (``DEST/.archiver-staging/``
for a local destination, ``$TMPDIR/archiver-staging/`` for S3)::

    .archiver-staging/
        3f9c2a1b7d40.lock      flock held by the run for as long as it lives
        3f9c2a1b7d40/          its files in flight

Whether a run is alive is told by its lock, not by a pid (a pid is reused, and in a container
every run is pid 1): the kernel drops an ``flock`` when its holder dies, SIGKILL included. So a
leftover folder is removed only when its lock can be taken, and nothing outside the parent is
ever taken for a temp file, whatever its name: a provider that names a recording like one of
our temp files cannot get it deleted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from archiver.locking import stale_temp

LOCK_SUFFIX = ".lock"
NEW_LOCK_GRACE = 60.0  # seconds a lock being taken (".new-*") is left alone by reapers


class Staging:
    """One run's staging folder under ``parent``, made on first use, removed by ``close``."""

    def __init__(self, parent: str | os.PathLike[str]) -> None:
        self.parent = Path(parent)
        self.token = secrets.token_hex(6)
        self._dir: Path | None = None
        self._dir_name = ""  # str(self._dir), compared for every file moved into place
        self._lock_fd: int | None = None  # a bare descriptor: held for the run, closed by close()
        self._guard = threading.Lock()  # worker threads ask for the folder at once

    def path(self) -> str:
        """The folder (created, and its lock taken, on first call)."""
        with self._guard:
            return self._make()

    def _make(self) -> str:
        if self._dir is None:
            # The lock is taken under a private name, then renamed into place: a reaper only
            # ever sees lock files that are already held.
            for attempt in range(5):
                self.parent.mkdir(parents=True, exist_ok=True)
                try:
                    made, tmp = tempfile.mkstemp(dir=self.parent, prefix=f".new-{self.token}-")
                    break
                except FileNotFoundError:  # another run's close() removed the empty parent
                    if attempt == 4:
                        raise
            try:
                fd = _locked(tmp, made)  # ``made`` is consumed, kept or closed
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            try:
                os.replace(tmp, self.parent / f"{self.token}{LOCK_SUFFIX}")
                folder = self.parent / self.token
                folder.mkdir()
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._lock_fd, self._dir, self._dir_name = fd, folder, str(folder)
        return self._dir_name

    def mkstemp(self, suffix: str = "") -> tuple[int, str]:
        """A new temp file in this run's folder: (fd, path)."""
        return tempfile.mkstemp(dir=self.path(), prefix="f-", suffix=suffix)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is a file in this run's folder."""
        return self._dir is not None and os.path.dirname(path) == self._dir_name

    def close(self) -> None:
        """Remove this run's folder and lock; never anything of another run."""
        with self._guard:
            self._close()

    def _close(self) -> None:
        if self._dir is None:
            return
        shutil.rmtree(self._dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(self.parent / f"{self.token}{LOCK_SUFFIX}")
        with contextlib.suppress(OSError):
            self.parent.rmdir()  # only when no other run has anything there
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._dir, self._dir_name, self._lock_fd = None, "", None


def reap(parent: str | os.PathLike[str]) -> int:
    """Remove the staging folders under ``parent`` whose runs are dead (their lock can be
    taken), and files left there by older versions. Returns how many were removed."""
    root = Path(parent)
    if not root.is_dir():
        return 0
    removed = 0
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name.endswith(LOCK_SUFFIX):
            token = name[: -len(LOCK_SUFFIX)]
            if _if_unlocked(entry, root / token):
                removed += 1
        elif name.startswith(".new-"):
            # A run died while taking its lock, or one is taking it right now (between its
            # mkstemp and its flock): only an old one is a leftover.
            if _older_than(entry, NEW_LOCK_GRACE) and _if_unlocked(entry):
                removed += 1
        elif entry.is_dir() and not (root / f"{name}{LOCK_SUFFIX}").exists():
            # A run makes its folder only after its lock is in place and removes it before
            # the lock, so a folder without a lock belongs to no live run.
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        elif entry.is_file() and stale_temp(name, ".fetch-"):
            # Downloads in flight of versions before per-run folders (pid-named): kept
            # only while that pid lives, as those versions did.
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _locked(path: str, writable: int) -> int:
    """A descriptor of ``path`` holding its exclusive flock (OSError when another holds it).

    Held read-only where the file system allows, so a run keeps no file open for writing but
    its downloads (an operator can remount the disk read-only under it). NFS emulates flock
    with fcntl locks, which want a descriptor open for writing (EBADF otherwise): there the
    writable one ``writable`` is kept; elsewhere it is closed."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno != errno.EBADF:
                raise
            fcntl.flock(writable, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return writable
    except BaseException:
        os.close(writable)  # consumed either way
        raise
    os.close(writable)
    return fd


def _if_unlocked(lock: Path, folder: Path | None = None) -> bool:
    """Remove ``folder`` (if any), then ``lock``, when the flock on ``lock`` can be taken (its
    holder is dead); held while removing, so no other reaper races it. False when alive."""
    try:
        writable = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fd = _locked(str(lock), writable)
    except OSError:
        return False  # alive (its descriptors are closed by _locked)
    try:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            lock.unlink()
    finally:
        os.close(fd)
    return True
