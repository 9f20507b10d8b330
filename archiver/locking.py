"""One run at a time per catalog + destination + provider account.

The lock is an ``flock`` on a small file beside the catalog: the kernel drops it when its
process dies, SIGKILL included, so a dead run's lock is simply taken over. The file keeps the
holder's pid and start time, for the messages.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
from datetime import UTC, datetime
from typing import IO

from archiver.errors import CatalogUnavailable, LockedError

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp(name: str, prefix: str) -> bool:
    """Whether ``name`` is a pid-named temp file (``{prefix}{pid}-...``, as versions before
    per-run staging folders named them) whose process is dead."""
    if not name.startswith(prefix):
        return False
    pid = name[len(prefix) :].split("-", 1)[0]
    return pid.isdigit() and not pid_alive(int(pid))


def _base(catalog_path: str) -> str:
    return catalog_path if catalog_path != ":memory:" else os.path.join(os.getcwd(), ".archiver")


class DestLock:
    """The catalog's record of one destination as a whole: every run holds it shared (beside
    its own RunLock), ``reindex``, which rebuilds that record from the sidecars, holds it
    alone. So a reindex never runs under a live run (which would remember rows the rebuild
    then forgets, or the other way round), nor a run under a reindex."""

    def __init__(self, catalog_path: str, dest: str, *, exclusive: bool) -> None:
        digest = hashlib.sha256(dest.encode()).hexdigest()[:16]
        self.path = f"{_base(catalog_path)}.dest-{digest}.lock"
        self.dest = dest
        self.exclusive = exclusive
        self._fh: IO[str] | None = None

    def __enter__(self) -> DestLock:
        try:
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole command
        except OSError as exc:
            raise CatalogUnavailable(f"cannot take the lock {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise LockedError(
                f"a run is archiving into {self.dest}: not rebuilding its catalog record under it "
                "(reindex when it has finished)"
                if self.exclusive
                else f"a reindex of {self.dest} is rebuilding its catalog record: not starting a run under it"
            ) from None
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class RunLock:
    """``with RunLock(...):`` around a run. Raises LockedError when another run holds it, or
    a reindex of the destination runs (:class:`DestLock`)."""

    def __init__(self, catalog_path: str, dest: str, provider: str, account: str, shard: str = "") -> None:
        # A shard (--shard I/N) is its own scope: N shards may run on one host, one catalog.
        scoped = f"{dest}\0{provider}\0{account}" + (f"\0{shard}" if shard else "")
        digest = hashlib.sha256(scoped.encode()).hexdigest()[:16]
        self.path = f"{_base(catalog_path)}.{provider}-{digest}.lock"
        self.what = f"{provider} account {account} into {dest}" + (f" (shard {shard})" if shard else "")
        self._dest = DestLock(catalog_path, dest, exclusive=False)
        self._fh: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self._dest.__enter__()
        try:
            return self._take()
        except BaseException:
            self._dest.__exit__()
            raise

    def _take(self) -> RunLock:
        try:
            return self._take_run()
        except OSError as exc:  # the catalog's disk is full or read-only: nothing can be remembered
            raise CatalogUnavailable(
                f"cannot take the run lock {self.path}: {exc.strerror or exc} "
                "(the catalog's disk is full or read-only?)"
            ) from None

    def _take_run(self) -> RunLock:
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fh)
            fh.close()
            raise LockedError(
                f"another run is archiving {self.what} (pid {holder.get('pid', '?')}, started "
                f"{holder.get('started_at', '?')} on {holder.get('host', '?')}); not starting a second one"
            ) from None
        previous = _read(fh)
        # We hold the flock, so whoever wrote the file is gone: the kernel tells, not the pid
        # (in a container every run is pid 1, and pids are reused).
        if previous.get("pid"):
            log.warning(
                "taking over the lock of a run that died (pid %s, started %s): cleaning up what it left",
                previous["pid"],
                previous.get("started_at"),
            )
        try:
            fh.seek(0)
            fh.truncate()
            now = datetime.now(UTC).isoformat()
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started_at": now}, fh)
            fh.flush()
        except OSError:
            fh.close()  # the flock goes with it
            raise
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fh is not None:
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh, fcntl.LOCK_UN)
                self._fh.close()
                self._fh = None
        finally:
            self._dest.__exit__()


def _read(fh: IO[str]) -> dict[str, str]:
    fh.seek(0)
    try:
        data = json.loads(fh.read() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
