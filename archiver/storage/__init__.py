"""Destinations by URL: a local path / ``file://`` URL, or ``s3://bucket/prefix``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from archiver.errors import ConfigError
from archiver.storage.base import LegalHolds, S3Options, Storage
from archiver.storage.local import LocalStorage

__all__ = ["LegalHolds", "LocalStorage", "S3Options", "Storage", "iter_chunks", "legal_holds", "open_storage"]

CHUNK = 1024 * 1024


def legal_holds(storage: Storage) -> LegalHolds | None:
    """The storage as a LegalHolds when it has that capability (S3), else None."""
    return storage if hasattr(storage, "set_legal_hold") else None  # type: ignore[return-value]


def iter_chunks(storage: Storage, key: str, size: int = CHUNK) -> Iterator[bytes]:
    """Stream an object in chunks (bounded memory, whatever its size)."""
    with storage.open_read(key) as fh:
        yield from iter(lambda: fh.read(size), b"")


def open_storage(url: str, s3_options: object | None = None, *, pool_size: int = 16) -> Storage:
    """The Storage for a ``--dest`` URL (S3 is imported only when asked for)."""
    if not url:
        raise ConfigError("no destination: pass --dest or set [archive] dest in the config file")
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        from archiver.storage.s3 import S3Storage

        opts = s3_options if isinstance(s3_options, S3Options) else S3Options()
        return S3Storage(url, opts, pool_size=pool_size)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"bad destination {url!r}: file:// URLs must be local")
        return LocalStorage(unquote(parts.path))
    if scheme and len(scheme) > 1:  # "c:" style drive letters are paths, not schemes
        raise ConfigError(f"bad destination {url!r}: use a local path, file:///path or s3://bucket/prefix")
    return LocalStorage(url)
