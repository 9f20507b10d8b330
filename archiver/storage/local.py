"""A local folder as destination: temp file in the run's staging folder (same file system),
fsync, rename into place, fsync the folder."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from archiver.errors import StorageError, StorageUnavailable, UnsafeKeyError, write_error
from archiver.models import Protection
from archiver.storage.staging import Staging, reap

STAGING = ".archiver-staging"
TMP_PREFIX = ".archiver-tmp-"  # only where staging is on another file system than a target


class LocalStorage:
    """Objects are files under ``root``; keys are relative POSIX paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # Resolved, so a symlink or a ``..`` path to the same folder is the same destination
        # (one run lock, one catalog scope).
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        self._staging = Staging(self.root / STAGING)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if key.startswith("/") or not path.is_relative_to(self.root):  # root is resolved already
            raise UnsafeKeyError(f"key {key!r} points outside {self.root}")
        return path

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # A probe file at the root, gone at once: a check touches no run's staging.
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".archiver-check-"):
                pass
        except OSError as exc:
            raise StorageUnavailable(f"cannot write to {self.root}: {exc.strerror or exc}") from None

    def staging_dir(self) -> str:
        """This run's own folder under ``DEST/.archiver-staging`` (see archiver.storage.staging)."""
        try:
            return self._staging.path()
        except OSError as exc:
            raise write_error(f"a staging folder in {self.root}", exc) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_file(
        self, key: str, path: str, *, content_type: str, sha256: str, protection: Protection | None = None
    ) -> None:
        _no_protection(protection)
        if self._staging.owns(path) and self._link(key, path):
            return
        with open(path, "rb") as src:
            self._write(key, lambda out: shutil.copyfileobj(src, out, 1024 * 1024))

    def _link(self, key: str, path: str) -> bool:
        """Store a file of our own staging folder without copying it: fsync, hard-link under
        a new temp name, rename into place. False when the file system cannot link."""
        target = self._path(key)
        tmp = os.path.join(self._staging.path(), f"l-{os.urandom(6).hex()}")
        try:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False
            raise write_error(key, exc) from None
        self._commit(key, tmp, target)
        return True

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> None:
        _no_protection(protection)
        self._write(key, lambda out: out.write(data))

    def put_new(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> bool:
        """Store ``data`` under ``key`` unless a file is there (False then): written whole in
        staging, fsynced, then hard-linked into place, which fails on an existing name, so
        of two writers racing for one key exactly one wins and no reader sees a part."""
        _no_protection(protection)
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = self._staging.mkstemp()
        except OSError as exc:
            raise write_error(key, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            _fsync_dir(target.parent)
            return True
        except OSError as exc:
            raise write_error(key, exc) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _write(self, key: str, fill: object) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = self._staging.mkstemp()
        except OSError as exc:
            raise write_error(key, exc) from None
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)  # type: ignore[operator]
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(key, exc) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._commit(key, tmp, target)

    def _commit(self, key: str, tmp: str, target: Path) -> None:
        """Rename ``tmp`` (complete and fsynced) to ``target``; the temp never outlives a failure."""
        try:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # This part of the destination is another file system: copy beside the target.
                beside = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed below
                    dir=target.parent, prefix=f"{TMP_PREFIX}{self._staging.token}-", delete=False
                )
                with beside, open(tmp, "rb") as src:
                    shutil.copyfileobj(src, beside, 1024 * 1024)
                    beside.flush()
                    os.fsync(beside.fileno())
                os.unlink(tmp)
                tmp = beside.name
                os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(key, exc) from None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        # Only the folder the prefix names is walked (``_custody/`` is not the whole archive).
        top = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):  # no key part begins with "." (models.check_key_part)
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def recover(self, scope_prefix: str, initiated_before: datetime | None = None) -> int:
        """Remove the staging folders of runs that died (told by their locks, not by names:
        nothing outside ``.archiver-staging`` is ever taken for a leftover). Returns how many."""
        return reap(self.root / STAGING)

    def close(self) -> None:
        """Remove this run's own staging folder (the shared parent stays)."""
        self._staging.close()


def _no_protection(protection: Protection | None) -> None:
    if protection is not None:
        raise StorageError("Object Lock and legal hold need an s3:// destination")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
