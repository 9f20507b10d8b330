"""``verify`` with a memory: which files to read (all, or a sample: least recently verified
first), what each check found (kept in the catalog), the coverage that proves, and, with
``repair``, missing or altered originals restored from their providers (a custody event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from archiver.catalog import Catalog
from archiver.compliance import coverage, custody
from archiver.compliance.repair import repair_findings
from archiver.compliance.verify import Finding, VerifyResult, verify_archive
from archiver.config import Settings
from archiver.errors import ArchiverError, ConfigError
from archiver.sidecars import Selection
from archiver.storage import Storage
from archiver.timeutil import utcnow

log = logging.getLogger("archiver.compliance.verify")


def verify_with_history(
    settings: Settings,
    storage: Storage,
    selection: Selection,
    *,
    workers: int = 4,
    on_file: Callable[[VerifyResult], None] | None = None,
    sample: coverage.Sample | None = None,
    repair: bool = False,
) -> VerifyResult:
    """Verify ``storage`` (checked and existing already), remember each file's check in the
    catalog and report the coverage. A sample needs the catalog (ConfigError when it cannot
    be opened); a full check goes on without one, and says the coverage was not recorded."""
    from archiver.session import catalog_path, open_catalog

    catalog: Catalog | None = None
    try:
        catalog = open_catalog(settings)
    except ConfigError as exc:
        if sample is not None:
            raise ConfigError(
                f"--sample needs the catalog (it remembers what was verified when): {exc}"
            ) from None
        log.warning("verify: the catalog cannot be used, so this check is not remembered: %s", exc)
    try:
        history = catalog.verifications(storage.url) if catalog else {}
        pick = (lambda jobs: coverage.pick(jobs, history, sample)) if sample else None
        result = verify_archive(storage, selection, workers=workers, on_file=on_file, pick=pick)
        result.dest = storage.url
        result.sample = str(sample) if sample else None
        now = utcnow()
        checked = list(result.checked)
        if repair:
            repairs = repair_findings(storage, result.findings, settings, catalog_path(settings), now)
            result.repairs = [r.to_json() for r in repairs]
            checked += [(r.key, r.sha256, "ok") for r in repairs if r.result == "repaired" and r.sha256]
            if repairs:
                _record_repairs(storage, settings, result, now)
        if catalog is not None:
            catalog.record_verifications(storage.url, checked, now)
            result.coverage = coverage.coverage(result.files, catalog.verifications(storage.url), now)
        return result
    finally:
        if catalog is not None:
            catalog.close()


def unresolved(result: VerifyResult) -> list[Finding]:
    """The findings a repair did not resolve (all of them without ``--repair``)."""
    fixed = {r["key"] for r in result.repairs or () if r["result"] == "repaired"}
    return [f for f in result.findings if f.key not in fixed]


def _record_repairs(storage: Storage, settings: Settings, result: VerifyResult, now: datetime) -> None:
    """One custody event for the repair attempts; a destination that refuses it is a finding."""
    repairs = result.repairs or []
    counts: dict[str, int] = {}
    for r in repairs:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    details = {
        "counts": counts,
        "repairs": [{k: r[k] for k in ("recording_id", "key", "result", "sha256")} for r in repairs],
    }
    try:
        custody.append(
            storage,
            "repair",
            details,
            protection=custody.event_protection(settings.s3.object_lock_mode, settings.s3.retain_days, now),
            now=now,
        )
    except ArchiverError as exc:
        result.findings.append(
            Finding("custody", custody.PREFIX, None, f"the repair's event was not logged: {exc}")
        )
