"""Adding a rendition to a recording already archived, from its stored original."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from archiver.errors import RecordingError, StorageError, UnsafeKeyError
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


def readable_original(storage: Storage, key: str, fmt: str, staging: str) -> tuple[str, str, str | None]:
    """A local file of the stored original for ffmpeg to read: (its path, the SHA-256 of its
    bytes, the temp copy to remove afterwards or None). A local archive's file is read where it
    is (hashed first: one read, no copy); any other is copied into ``staging`` while hashing."""
    if isinstance(storage, LocalFiles):
        path = storage.local_path(key)
        try:
            with open(path, "rb") as fh:
                return path, hashlib.file_digest(fh, "sha256").hexdigest(), None
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror or exc}") from None
    fd, copy = tempfile.mkstemp(dir=staging, prefix=f".fetch-{os.getpid()}-", suffix=f".{fmt}")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_chunks(storage, key):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(copy)
        raise
    return copy, digest.hexdigest(), copy


def add_rendition(item: Archived, deps: RetranscodeDeps) -> Outcome:
    """Encode ``deps.profile`` from the stored original and rewrite the sidecar (atomically,
    after the rendition is stored). ``skipped`` when the rendition is there already."""
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
    try:
        src, digest, copy = readable_original(deps.storage, original["key"], original["format"], staging)
        if digest != original["sha256"]:
            return Outcome(
                rid,
                "failed",
                stage="verify",
                error=f"stored original {original['key']} does not match its sidecar's SHA-256",
            )
        key = item.key[: -len(".json")] + "." + rendition_ext(profile.name, profile.ext)
        made = make_rendition(
            deps.transcoder,
            profile,
            src=src,
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
        made_path = made.path
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
