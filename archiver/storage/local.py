"""A local folder as destination: temp file in the run's staging folder (same file system),
fsync, rename into place; the folders' fsyncs grouped (:meth:`LocalStorage.sync`)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from archiver.errors import StorageError, StorageUnavailable, UnsafeKeyError, read_error, write_error
from archiver.fileio import fsync_path, write_all
from archiver.models import Protection
from archiver.storage.staging import Staging, reap

STAGING = ".archiver-staging"
_BAD_PARTS = frozenset(("", ".", ".."))  # key parts that would leave a folder or name none
TMP_PREFIX = ".archiver-tmp-"  # only where staging is on another file system than a target


class LocalStorage:
    """Objects are files under ``root``; keys are relative POSIX paths.

    Durability: a file is fsynced before it is renamed into place; the folder's fsync (which
    makes the new name durable) is deferred and grouped: :meth:`sync` fsyncs each folder
    written since once, whatever the number of files. The pipeline syncs a recording's media
    before writing its sidecar, and the catalog syncs before it commits a batch of "archived"
    (so it never claims a file whose name a power cut could still take away); ``close``
    syncs what is left."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # Resolved, so a symlink or a ``..`` path to the same folder is the same destination
        # (one run lock, one catalog scope).
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        self._staging = Staging(self.root / STAGING)
        # Folders (relative) known to lie inside the root, and folders already made: checked
        # once per folder, not once per key (one day's folder holds all its recordings).
        # Paths are strings on the way of every recording (a pathlib.Path costs microseconds
        # per operation, each under the GIL the workers share); Path only once per folder.
        self._root = str(self.root)
        self._inside: set[str] = set()
        self._made: set[str] = set()
        self._dirty: set[str] = set()  # folders with a rename not yet fsynced
        self._dir_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _path(self, key: str, *, follow: bool = True) -> Path:
        """:meth:`_file` as a Path."""
        return Path(self._file(key, follow=follow))

    def _file(self, key: str, *, follow: bool = True) -> str:
        """The file of ``key``. Refused (UnsafeKeyError) when the key, a folder on its way
        (a symlink) or, with ``follow``, the file itself (a symlink read through) leads out
        of the root."""
        if key.startswith("/") or not _BAD_PARTS.isdisjoint(key.split("/")):
            raise UnsafeKeyError(f"key {key!r} points outside {self.root}")
        parent = key.rpartition("/")[0]
        if parent not in self._inside:
            if not (self.root / parent).resolve().is_relative_to(self.root):  # root is resolved
                raise UnsafeKeyError(f"key {key!r} points outside {self.root}")
            self._inside.add(parent)
        path = os.path.join(self._root, key)
        if follow and os.path.islink(path):
            real = Path(path).resolve()
            if not real.is_relative_to(self.root):
                raise UnsafeKeyError(f"key {key!r} points outside {self.root}")
            return str(real)
        return path

    def _target(self, key: str) -> str:
        """Where a write of ``key`` goes, its folder made. A rename replaces a symlink there
        (it never writes through one), so the file itself is not followed."""
        target = self._file(key, follow=False)
        folder = os.path.dirname(target)
        if folder not in self._made:
            created = _make_folders(Path(folder))
            with self._guard:  # a new folder's name is durable once its parent is fsynced
                self._dirty.update(str(made.parent) for made in created)
            self._made.add(folder)
        return target

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
        """Whether ``key`` is a file here: one ``lstat`` for a key that is not a symlink (a
        worker asks this of every recording, before downloading it)."""
        path = self._file(key, follow=False)
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return False
        if stat.S_ISLNK(mode):
            return self._path(key).is_file()  # read through, checked to stay inside
        return stat.S_ISREG(mode)

    def put_file(
        self, key: str, path: str, *, content_type: str, sha256: str, protection: Protection | None = None
    ) -> None:
        """A file of this run's staging folder is moved into place (fsync, rename: no copy;
        copied only where the target is on another file system); any other file is copied."""
        _no_protection(protection)
        if self._staging.owns(path):
            try:
                target = self._target(key)
                fsync_path(path)
            except OSError as exc:
                raise write_error(key, exc) from None
            self._commit(key, path, target)
            return
        with open(path, "rb") as src:
            self._write(key, src)

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> None:
        _no_protection(protection)
        self._write(key, data)

    def put_new(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> bool:
        """Store ``data`` under ``key`` unless a file is there (False then): written whole in
        staging, fsynced, then hard-linked into place, which fails on an existing name, so
        of two writers racing for one key exactly one wins and no reader sees a part."""
        _no_protection(protection)
        target = self._path(key)
        try:
            for folder in _make_folders(target.parent):  # new folders' names durable first
                _fsync_dir(folder.parent)
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

    def _write(self, key: str, content: bytes | BinaryIO) -> None:
        """Write ``content`` (bytes, or a file read to its end) to a temp file in staging,
        fsync it, rename it into place."""
        try:
            target = self._target(key)
            fd, tmp = self._staging.mkstemp()
        except OSError as exc:
            raise write_error(key, exc) from None
        try:
            try:
                if isinstance(content, bytes):
                    write_all(fd, content)
                else:
                    while chunk := content.read(1024 * 1024):
                        write_all(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(key, exc) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._commit(key, tmp, target)

    def _commit(self, key: str, tmp: str, target: str) -> None:
        """Rename ``tmp`` (complete and fsynced) to ``target``; the temp never outlives a
        failure. The folder is marked for :meth:`sync`."""
        folder = os.path.dirname(target)
        try:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                if exc.errno == errno.ENOENT and os.path.exists(tmp):  # the folder went away
                    self._made.discard(folder)
                    os.makedirs(folder, exist_ok=True)
                    os.replace(tmp, target)
                elif exc.errno != errno.EXDEV:
                    raise
                else:
                    tmp = self._copy_beside(tmp, folder)
                    os.replace(tmp, target)
            with self._guard:
                self._dirty.add(folder)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise write_error(key, exc) from None

    def _copy_beside(self, tmp: str, folder: str) -> str:
        """This part of the destination (``folder``) is another file system: copy ``tmp``
        into it (fsynced), remove ``tmp``, return the copy's name."""
        beside = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed by the caller
            dir=folder, prefix=f"{TMP_PREFIX}{self._staging.token}-", delete=False
        )
        try:
            with beside, open(tmp, "rb") as src:
                shutil.copyfileobj(src, beside, 1024 * 1024)
                beside.flush()
                os.fsync(beside.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(beside.name)
            raise
        os.unlink(tmp)
        return beside.name

    def sync(self, keys: Iterable[str] | None = None) -> None:
        """Make the names written so far durable: fsync each folder holding a rename not yet
        fsynced (of ``keys``, or all), once. A folder another thread is fsyncing is waited
        for, so on return every rename made before the call is durable."""
        if keys is None:
            with self._guard:
                folders = set(self._dirty)
        else:
            folders = {os.path.dirname(os.path.join(self._root, k)) for k in keys}
        for folder in sorted(folders):
            with self._guard:
                lock = self._dir_locks.setdefault(folder, threading.Lock())
            with lock:
                with self._guard:
                    if folder not in self._dirty:
                        continue  # fsynced since (by another thread, under this lock)
                    self._dirty.discard(folder)
                try:
                    _fsync_dir(folder)
                except OSError as exc:
                    with self._guard:
                        self._dirty.add(folder)
                    raise write_error(f"the folder {folder}", exc) from None

    def local_path(self, key: str) -> str:
        """The file of ``key``, for a program to read where it is (:class:`LocalFiles`):
        ``transcode`` hands it to ffmpeg instead of copying the original into staging."""
        return self._file(key)

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._file(key), "rb")
        except OSError as exc:
            raise read_error(key, exc) from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        top = self._folder(prefix.rpartition("/")[0])
        if top is None:
            return

        def unlistable(exc: OSError) -> None:  # os.walk passes over what it cannot read: we don't
            raise StorageError(
                f"cannot list {exc.filename or top}: {exc.strerror or exc}", destination_down=True
            )

        for dirpath, dirnames, filenames in os.walk(top, onerror=unlistable):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):  # no key part begins with "." (models.check_key_part)
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        """The folders right under ``prefix`` (not hidden ones, not symlinks), sorted."""
        top = self._folder(prefix.rstrip("/"))
        if top is None:
            return
        try:
            with os.scandir(top) as entries:
                names = sorted(
                    e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                )
        except OSError as exc:
            raise StorageError(f"cannot list {prefix or self.root}: {exc.strerror or exc}") from None
        yield from names

    def _folder(self, relative: str) -> str | None:
        """The folder ``relative`` to the root as a full walk reaches it (never through a
        symlink or a hidden folder), or None when there is no such folder."""
        path = str(self.root)
        for part in relative.split("/") if relative else ():
            if part in ("", ".", "..") or part.startswith("."):
                return None
            path = os.path.join(path, part)
            if os.path.islink(path) or not os.path.isdir(path):
                return None
        return path

    def recover(self, scope_prefix: str, initiated_before: datetime | None = None) -> int:
        """Remove the staging folders of runs that died (told by their locks, not by names:
        nothing outside ``.archiver-staging`` is ever taken for a leftover). Returns how many."""
        return reap(self.root / STAGING)

    def close(self) -> None:
        """Make every name written durable, remove this run's own staging folder (the shared
        parent stays)."""
        try:
            self.sync()
        finally:
            self._staging.close()


def _no_protection(protection: Protection | None) -> None:
    if protection is not None:
        raise StorageError("Object Lock and legal hold need an s3:// destination")


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones this made, outermost first (each
    one's name lives in its parent, which must be fsynced for it to survive a crash)."""
    missing = []
    at = folder
    while not at.is_dir():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    made = []
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:  # another writer made it meanwhile (or it is not a folder)
            if not new.is_dir():
                raise
            continue
        made.append(new)
    return made


def _fsync_dir(path: str | Path) -> None:
    fsync_path(str(path))
