"""A local folder as destination: temp file in the same folder, fsync, rename, fsync dir."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from archiver.errors import StorageError, StorageUnavailable, UnsafeKeyError
from archiver.locking import stale_temp
from archiver.models import Protection

STAGING = ".archiver-staging"
TMP_PREFIX = ".archiver-tmp-"
FETCH_PREFIX = ".fetch-"  # archiver.fetch's downloads in flight, in the staging folder


class LocalStorage:
    """Objects are files under ``root``; keys are relative POSIX paths."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if key.startswith("/") or not path.is_relative_to(self.root.resolve()):
            raise UnsafeKeyError(f"key {key!r} points outside {self.root}")
        return path

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=TMP_PREFIX):
                pass
        except OSError as exc:
            raise StorageUnavailable(f"cannot write to {self.root}: {exc.strerror or exc}") from None

    def staging_dir(self) -> str:
        path = self.root / STAGING
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put_file(
        self, key: str, path: str, *, content_type: str, sha256: str, protection: Protection | None = None
    ) -> None:
        _no_protection(protection)
        with open(path, "rb") as src:
            self._write(key, lambda out: shutil.copyfileobj(src, out, 1024 * 1024))

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> None:
        _no_protection(protection)
        self._write(key, lambda out: out.write(data))

    def _write(self, key: str, fill: object) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{TMP_PREFIX}{os.getpid()}-")
        except OSError as exc:
            raise StorageError(f"cannot write {key}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)  # type: ignore[operator]
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write {key}: {exc.strerror or exc}") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(TMP_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def recover(self, scope_prefix: str, initiated_before: datetime | None = None) -> int:
        """Remove temp files left by runs that died (their pid is gone). Returns how many."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d == STAGING or not d.startswith(".")]
            for name in filenames:
                if stale_temp(name, TMP_PREFIX) or stale_temp(name, FETCH_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
        return removed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            (self.root / STAGING).rmdir()  # only when empty: never another run's files


def _no_protection(protection: Protection | None) -> None:
    if protection is not None:
        raise StorageError("Object Lock and legal hold need an s3:// destination")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
