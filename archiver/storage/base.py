"""The Storage protocol every destination implements (local folder, S3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from archiver.models import Protection


@dataclass(frozen=True)
class S3Options:
    """Upload settings of an S3 destination (``[s3]`` in the config file). Plain data, here
    so settings can be handed down without importing boto3 (:mod:`archiver.storage.s3`)."""

    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    multipart_threshold_mb: int = 64
    part_size_mb: int = 16
    max_concurrency: int = 4
    object_lock_mode: str | None = None
    legal_hold: bool = False


class LegalHolds(Protocol):
    """The optional capability of changing an object's legal hold (S3 with Object Lock)."""

    def set_legal_hold(self, key: str, on: bool) -> None: ...


@runtime_checkable
class DeferredSync(Protocol):
    """The optional capability of a destination whose writes become durable in groups (a
    local folder: one fsync per folder, not per file). Where a destination lacks it, every
    write is durable when it returns (S3)."""

    def sync(self, keys: Iterable[str] | None = None) -> None:
        """Return once the writes of ``keys`` (or all so far) are durable."""
        ...


def make_durable(storage: object, keys: Iterable[str] | None = None) -> None:
    """:meth:`DeferredSync.sync` where ``storage`` has it (a no-op elsewhere): called before
    anything that claims those writes are there (a sidecar naming the files, the catalog
    saying "archived", a deletion at the provider)."""
    sync = getattr(storage, "sync", None)  # DeferredSync (isinstance of a Protocol: ~20 us)
    if callable(sync):
        sync(keys)


@runtime_checkable
class LocalFiles(Protocol):
    """The optional capability of a destination whose objects are local files (a folder):
    a program can read one where it is, without a copy."""

    def local_path(self, key: str) -> str:
        """The path of the file stored under ``key`` (UnsafeKeyError when it would lead
        outside the destination)."""
        ...


@runtime_checkable
class CreateOnly(Protocol):
    """The optional capability of storing an object only where none is yet (local: a hard
    link, which fails on an existing name; S3: a conditional put, ``If-None-Match: *``). Two
    writers racing for one key: exactly one wins. The custody log appends with it."""

    def put_new(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> bool:
        """Store ``data`` under ``key`` atomically unless an object is there; False when one is."""
        ...


@runtime_checkable
class LockState(Protocol):
    """The optional capability of telling an object's current Object Lock (S3)."""

    def lock_state(self, key: str) -> Protection | None:
        """The retention and legal hold the object carries now; None when it has neither
        (or is not there)."""
        ...


class Storage(Protocol):
    """A place that keeps objects by key. Writes are all-or-nothing: a reader sees either
    the previous object or the complete new one, never part of one."""

    url: str

    def check(self) -> None:
        """Fail fast (StorageUnavailable / ConfigError) when the destination cannot be used."""
        ...

    def staging_dir(self) -> str:
        """A local folder for downloads in flight (same filesystem as the destination when
        there is one)."""
        ...

    def exists(self, key: str) -> bool: ...

    def put_file(
        self, key: str, path: str, *, content_type: str, sha256: str, protection: Protection | None = None
    ) -> None:
        """Store the local file ``path`` under ``key`` atomically (with Object Lock settings,
        where the backend has them)."""
        ...

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> None:
        """Store ``data`` under ``key`` atomically."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """A binary stream of the object (StorageError when missing)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key under ``prefix``, excluding in-flight temporaries."""
        ...

    def recover(self, scope_prefix: str, initiated_before: datetime | None = None) -> int:
        """Clean what runs that died left behind (temp files; multipart uploads under
        ``scope_prefix`` begun before ``initiated_before``, default now). Called with the run
        lock held. Returns how many things it cleaned."""
        ...

    def close(self) -> None:
        """Release clients and remove staging leftovers this object created."""
        ...
