"""Deleting recordings at the provider, only after the stored copy is re-read, matches its
sidecar and decodes as the recording (archiver.media.mediacheck). Called after the listing walk is
over: deleting during an offset walk would pull later items onto pages already read."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.errors import FatalError, RecordingError
from archiver.media.mediacheck import DamagedMedia, verified_probe
from archiver.media.probe import probe_file
from archiver.models import Recording
from archiver.pipeline import Deps
from archiver.providers.base import Deleter
from archiver.sidecars import read_sidecar
from archiver.storage import iter_chunks
from archiver.storage.base import make_durable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deletion:
    recording_id: str
    result: str  # "deleted" | "already-gone" | "would-delete" | "kept"
    detail: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "recording_id": self.recording_id,
            "result": self.result,
            "detail": self.detail,
            "verified_sha256": self.sha256,
        }


def verify_copy(rec: Recording, sidecar_key: str, deps: Deps) -> str:
    """The stored original's SHA-256 after re-reading it; RecordingError when it is not there,
    not complete, or not what the sidecar says."""
    doc = read_sidecar(deps.storage, sidecar_key)  # validated: SidecarError when unusable
    if doc is None:
        raise RecordingError(f"no sidecar at {sidecar_key}")
    if doc["recording"]["recording_id"] != rec.recording_id:
        raise RecordingError(f"the sidecar at {sidecar_key} is of {doc['recording']['recording_id']!r}")
    original = next((f for f in doc["files"] if f.get("role") == "original"), None)
    if original is None or not original.get("key"):
        raise RecordingError("the original is not stored (--no-keep-original): not deleting the only copy")
    # Archives made before copies were checked to decode may hold a broken body: such a copy
    # is no reason to delete the provider's (`archiver fetch --force ID` archives it again).
    if original.get("probe_error") or original.get("duration_seconds") is None:
        why = f"probe_error {original['probe_error']!r}" if original.get("probe_error") else "no duration"
        raise RecordingError(
            f"the archived original {original['key']} was not verified to decode ({why}): "
            "not deleting; `archiver fetch --force` re-archives it"
        )
    key, fmt = original["key"], str(original.get("format") or "")
    # One read of the stored bytes: hashed, and kept in staging to be checked to decode (an
    # archive made before copies were checked may hold a sidecar that trusted a lying header).
    fd, tmp = tempfile.mkstemp(dir=deps.storage.staging_dir(), prefix="verify-", suffix=f".{fmt}")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_chunks(deps.storage, key):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if digest.hexdigest() != original["sha256"] or size != original["bytes"]:
            raise RecordingError(
                f"stored {key} does not match its sidecar ({size} bytes, {digest.hexdigest()})"
            )
        try:
            verified_probe(tmp, fmt, probe_file(tmp, fmt), rec.duration_seconds)
        except DamagedMedia as exc:
            raise RecordingError(
                f"the stored original {key} does not decode as the recording ({exc}): not deleting; "
                "`archiver fetch --force` re-archives it"
            ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return digest.hexdigest()


def delete_verified(
    candidates: Iterable[tuple[Recording, str]],
    deps: Deps,
    deleter: Deleter,
    *,
    run_id: str,
    older_than: timedelta | None,
    now: datetime,
    dry_run: bool = False,
) -> list[Deletion]:
    """Delete each archived candidate (recording, sidecar key) at the provider once its
    stored copy is verified. Recordings newer than ``older_than`` stay at the provider."""
    out: list[Deletion] = []
    if not dry_run:
        make_durable(deps.storage)  # the archive's copies durable before the provider's go
    for rec, sidecar_key in candidates:
        rid = rec.recording_id
        if older_than is not None and (rec.started_at is None or rec.started_at > now - older_than):
            continue
        if deps.catalog.deleted(deps.scope, rid):
            continue
        try:
            digest = verify_copy(rec, sidecar_key, deps)
        except RecordingError as exc:
            log.error("not deleting %s at the provider: %s", rid, exc)
            out.append(Deletion(rid, "kept", str(exc)))
            continue
        if dry_run:
            out.append(Deletion(rid, "would-delete", None, digest))
            continue
        try:
            gone = deleter.delete_recording(rid)
        except FatalError:
            raise
        except RecordingError as exc:
            out.append(Deletion(rid, "kept", f"delete failed: {exc}", digest))
            continue
        result = "deleted" if gone else "already-gone"
        deps.catalog.record_deletion(deps.scope, rid, run_id, digest, result)
        log.info(
            "%s %s at the provider (verified copy %s)", result, rid, digest[:12], extra={"recording_id": rid}
        )
        out.append(Deletion(rid, result, None, digest))
    return out
