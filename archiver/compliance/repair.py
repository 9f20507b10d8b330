"""Self-repair (``verify --repair``): a missing or altered original is downloaded again from
its provider and rewritten, but only when the provider's bytes hash to the SHA-256 in the
sidecar, the proof that they are the recording that was archived.

Each finding ends as ``repaired`` (rewritten atomically and read back), ``unrepairable``
(the provider no longer has it, serves other bytes, or cannot be asked) or ``locked`` (under
Object Lock retention or a legal hold: never touched). The writes happen under the run lock
of the recording's provider account + destination, so no run is archiving it meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from archiver.compliance.verify import Finding, hash_object
from archiver.config import Settings
from archiver.errors import ArchiverError, LockedError, NotFoundError, SidecarError
from archiver.locking import RunLock
from archiver.models import CONTENT_TYPES, Fetched, Recording
from archiver.providers import make_client
from archiver.sidecars import read_sidecar
from archiver.storage.base import LockState, Storage
from archiver.timeutil import lenient_time

if TYPE_CHECKING:  # httpx is imported when a repair downloads, not for `--help`
    import httpx

    from archiver.providers.base import Provider

log = logging.getLogger(__name__)

REPAIRABLE = ("missing", "altered")


@dataclass(frozen=True)
class Repair:
    """What became of one finding: ``repaired``, ``unrepairable`` or ``locked``."""

    key: str
    recording_id: str | None
    result: str
    detail: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "recording_id": self.recording_id,
            "result": self.result,
            "detail": self.detail,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class _Target:
    finding: Finding
    provider: str
    account: str
    entry: dict[str, Any]
    protection: dict[str, Any] | None


def repair_findings(
    storage: Storage, findings: Sequence[Finding], settings: Settings, catalog_path: str, now: datetime
) -> list[Repair]:
    """Try to repair every ``missing`` or ``altered`` finding (others are left as they are)."""
    done: list[Repair] = []
    groups: dict[tuple[str, str], list[_Target]] = {}
    for finding in findings:
        if finding.kind not in REPAIRABLE:
            continue
        target = _target(storage, finding)
        if isinstance(target, Repair):
            done.append(target)
        else:
            groups.setdefault((target.provider, target.account), []).append(target)
    if not groups:
        return done
    from archiver.session import build_provider

    with make_client(timeout=settings.http.timeout_seconds) as client:
        for (name, account), targets in groups.items():
            try:
                provider = build_provider(settings, name, client)
            except ArchiverError as exc:
                done.extend(_unrepairable(t, f"cannot ask {name}: {exc}") for t in targets)
                continue
            if provider.account != account:
                why = f"the configured {name} credentials are for account {provider.account}, not {account}"
                done.extend(_unrepairable(t, why) for t in targets)
                continue
            download = _downloader(client, provider, storage, settings)
            try:
                with RunLock(catalog_path, storage.url, name, account):
                    done.extend(_repair_one(storage, t, now, provider, download) for t in targets)
            except LockedError as exc:
                done.extend(_unrepairable(t, f"not now: {exc}") for t in targets)
    return done


def _downloader(
    client: httpx.Client, provider: Provider, storage: Storage, settings: Settings
) -> Callable[[Recording], Fetched]:
    from archiver.media.fetch import fetch_media  # httpx: imported when a repair downloads
    from archiver.session import retry_policy

    def download(rec: Recording) -> Fetched:
        return fetch_media(
            client,
            provider,
            rec,
            storage.staging_dir(),
            retry_policy(settings),
            deadline_floor=settings.http.download_deadline_seconds,
        )

    return download


def _unrepairable(t: _Target, why: str) -> Repair:
    return Repair(t.finding.key, t.finding.recording_id, "unrepairable", why)


def _target(storage: Storage, finding: Finding) -> _Target | Repair:
    """The sidecar's account of the finding's file, or why it cannot be repaired."""

    def no(why: str) -> Repair:
        return Repair(finding.key, finding.recording_id, "unrepairable", why)

    if not finding.sidecar:
        return no("no sidecar names this file")
    try:
        doc = read_sidecar(storage, finding.sidecar)
    except (SidecarError, ArchiverError) as exc:
        return no(f"its sidecar cannot be read: {exc}")
    if doc is None:
        return no(f"{finding.sidecar} is not a sidecar")
    entry = next((f for f in doc["files"] if f.get("key") == finding.key), None)
    if entry is None:
        return no(f"{finding.sidecar} no longer lists it")
    if entry["role"] != "original":
        return no("a rendition: repair restores originals (`archiver transcode` makes renditions)")
    rec = doc["recording"]
    protection = doc.get("protection") if isinstance(doc.get("protection"), dict) else None
    return _Target(finding, rec["provider"], rec["account"], entry, protection)


def _locked(storage: Storage, t: _Target, now: datetime) -> str | None:
    """Why the file must not be touched (retention not yet over, a legal hold), or None."""
    p = t.protection or {}
    until = lenient_time(p.get("retain_until"))
    if until is not None and until > now:
        return f"under Object Lock retention until {p['retain_until']} (the sidecar's protection)"
    if p.get("legal_hold"):
        return "under a legal hold (the sidecar's protection)"
    if isinstance(storage, LockState):
        state = storage.lock_state(t.finding.key)
        if state is not None and state.retain_until is not None and state.retain_until > now:
            return f"under Object Lock retention until {state.retain_until.isoformat()}"
        if state is not None and state.legal_hold:
            return "under a legal hold"
    return None


def _repair_one(
    storage: Storage, t: _Target, now: datetime, provider: Provider, download: Callable[[Recording], Fetched]
) -> Repair:
    f = t.finding
    try:
        why = _locked(storage, t, now)
    except ArchiverError as exc:
        return _unrepairable(t, f"cannot tell whether it is under Object Lock: {exc}")
    if why is not None:
        return Repair(f.key, f.recording_id, "locked", f"not touched: {why}")
    try:
        rec = provider.get_recording(f.recording_id or "")
    except NotFoundError:
        return _unrepairable(t, "gone at the provider (its get-one answers 404)")
    except ArchiverError as exc:
        return _unrepairable(t, f"the provider cannot be asked: {exc}")
    if rec.state != "complete":
        return _unrepairable(t, f"the provider holds it as {rec.provider_state or rec.state!r}")
    try:
        fetched = download(rec)
    except ArchiverError as exc:
        return _unrepairable(t, f"download failed: {exc}")
    want_sha, want_bytes = t.entry["sha256"], t.entry["bytes"]
    try:
        if fetched.sha256 != want_sha or fetched.bytes != want_bytes:
            return _unrepairable(
                t,
                f"the provider's bytes differ ({fetched.bytes} bytes, SHA-256 {fetched.sha256}; the "
                f"sidecar says {want_bytes} bytes, {want_sha}): not the recording that was archived",
            )
        storage.put_file(
            f.key,
            fetched.path,
            content_type=CONTENT_TYPES.get(t.entry["format"], "application/octet-stream"),
            sha256=fetched.sha256,
        )
        digest, size = hash_object(storage, f.key)  # read back: the repair itself is verified
        if digest != want_sha or size != want_bytes:
            return _unrepairable(t, f"written, but it reads back as {size} bytes, SHA-256 {digest}")
    except ArchiverError as exc:
        return _unrepairable(t, f"cannot write it: {exc}")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(fetched.path)
    log.info("repaired recording %s: %s from %s", f.recording_id, f.key, t.provider)
    return Repair(f.key, f.recording_id, "repaired", f"downloaded again from {t.provider}", want_sha)
