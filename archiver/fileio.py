"""Writes and reads on bare file descriptors, for the files every recording makes (its
download, its sidecar): no buffered file object around them, whose set-up costs a stat, a
terminal check and a seek per file, each a system call that hands the GIL to another worker
and waits to get it back."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than it is given)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_all(fd: int, size: int) -> bytes:
    """The ``size`` bytes of a regular file from ``fd``'s start (fewer if it is shorter)."""
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        part = os.pread(fd, size - offset, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def fsync_path(path: str) -> None:
    """fsync the file (or folder) at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
