"""Adding a rendition to a recording already archived, from its stored original."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archiver.errors import RecordingError, StorageError, TranscodeError, UnsafeKeyError
from archiver.media.renditions import call_tags, make_rendition
from archiver.media.transcode import Transcoder
from archiver.models import CONTENT_TYPES, Outcome, Probe, Protection, render_sidecar, rendition_ext
from archiver.profiles import Profile
from archiver.sidecars import Archived
from archiver.storage import Storage, iter_chunks
from archiver.storage.base import LocalFiles, make_durable
from archiver.timeutil import lenient_time


@dataclass(frozen=True)
class RetranscodeDeps:
    storage: Storage
    transcoder: Transcoder
    profile: Profile
    force: bool = False


def stored_protection(doc: dict[str, Any]) -> Protection | None:
    """The Object Lock settings the recording was archived with, for objects added later."""
    p = doc.get("protection")
    if not p:
        return None
    return Protection(
        p.get("object_lock_mode"), lenient_time(p.get("retain_until")), bool(p.get("legal_hold"))
    )


class _Digest:
    """The SHA-256 of an open file, computed on a thread of its own while ffmpeg reads the
    same file (hashlib releases the GIL): the encode does not wait for it, nor it for the
    encode. The thread closes the file."""

    def __init__(self, fh: io.BufferedReader, key: str) -> None:
        self._fh, self._key = fh, key
        self._digest: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=f"sha256 {key}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._fh as fh:
                self._digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            self._error = exc

    def __call__(self) -> str:
        """The hex digest, once the whole file is read (StorageError if it cannot be)."""
        self._thread.join()
        if self._error is not None:
            raise StorageError(f"cannot read {self._key}: {self._error.strerror or self._error}")
        assert self._digest is not None
        return self._digest


@dataclass(frozen=True)
class Readable:
    """A stored original as a local file for ffmpeg to read."""

    path: str
    size: int
    sha256: Callable[[], str]  # of the bytes at ``path``; waits for them to be read
    copy: str | None  # the temp copy to remove afterwards; None: the archive's own file


def readable_original(storage: Storage, key: str, fmt: str, staging: str) -> Readable:
    """A local file of the stored original for ffmpeg to read. A local archive's file is read
    where it is (no copy), hashed beside the encode that reads it; any other is copied into
    ``staging`` while hashing."""
    if isinstance(storage, LocalFiles):
        path = storage.local_path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by _Digest's thread
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from None
        return Readable(path, os.fstat(fh.fileno()).st_size, _Digest(fh, key), None)
    fd, copy = tempfile.mkstemp(dir=staging, prefix=f".fetch-{os.getpid()}-", suffix=f".{fmt}")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_chunks(storage, key):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(copy)
        raise
    hexdigest = digest.hexdigest()
    return Readable(copy, size, lambda: hexdigest, copy)


def add_rendition(item: Archived, deps: RetranscodeDeps) -> Outcome:
    """Encode ``deps.profile`` from the stored original and rewrite the sidecar (atomically,
    after the rendition is stored). ``skipped`` when the rendition is there already. Nothing
    is stored unless the original the rendition was made from matches its sidecar's SHA-256
    (``failed`` at ``verify`` otherwise): a local one is hashed while it is encoded."""
    rid, doc, profile = item.recording_id, item.doc, deps.profile
    files: list[dict[str, Any]] = doc["files"]
    if not deps.force and any(f.get("profile") == profile.name for f in files):
        return Outcome(rid, "skipped")
    original = next((f for f in files if f.get("role") == "original"), None)
    if original is None or not original.get("key"):
        return Outcome(
            rid,
            "failed",
            stage="transcode",
            error="no stored original to transcode from (archived with --no-keep-original)",
        )
    staging = deps.storage.staging_dir()
    made_path = copy = None
    altered = Outcome(
        rid,
        "failed",
        stage="verify",
        error=f"stored original {original['key']} does not match its sidecar's SHA-256",
    )
    try:
        src = readable_original(deps.storage, original["key"], original["format"], staging)
        copy = src.copy
        # A local original is hashed beside its encode: of the sidecar's size, it is encoded
        # before its hash is known, and an altered one's rendition is dropped, never stored.
        # One of another size (most likely altered) waits for its hash, as a copy has it.
        if (copy or src.size != original["bytes"]) and src.sha256() != original["sha256"]:
            return altered
        key = item.key[: -len(".json")] + "." + rendition_ext(profile.name, profile.ext)
        try:
            made = make_rendition(
                deps.transcoder,
                profile,
                src=src.path,
                src_format=original["format"],
                src_probe=Probe(
                    duration_seconds=original.get("duration_seconds"),
                    sample_rate=original.get("sample_rate"),
                    channels=original.get("channels"),
                ),
                key=key,
                tags=call_tags(doc["recording"], original["sha256"]),
                staging_dir=staging,
            )
        except TranscodeError:
            if src.sha256() != original["sha256"]:  # an altered original says so, not its encode
                return altered
            raise
        made_path = made.path
        if src.sha256() != original["sha256"]:
            return altered
        protection = stored_protection(doc)  # what the recording was archived with
        deps.storage.put_file(
            key,
            made.path,
            content_type=CONTENT_TYPES[profile.ext],
            sha256=made.file.sha256,
            protection=protection,
        )
        make_durable(deps.storage, [key])  # the rendition's name before the sidecar naming it
        doc["files"] = [f for f in files if f.get("profile") != profile.name] + [made.file.to_json()]
        body = render_sidecar(doc)
        deps.storage.put_bytes(item.key, body, content_type=CONTENT_TYPES["json"], protection=protection)
        return Outcome(rid, "archived", bytes_written=made.file.bytes + len(body), keys=(key, item.key))
    except UnsafeKeyError as exc:  # a local original that is a symlink to outside the archive
        return Outcome(rid, "failed", stage="sidecar", error=f"unsafe sidecar {item.key}: {exc}")
    except (RecordingError, StorageError) as exc:
        return Outcome(rid, "failed", stage=exc.stage, error=str(exc))
    finally:
        for path in (copy, made_path):
            if path:
                with contextlib.suppress(OSError):
                    os.unlink(path)
