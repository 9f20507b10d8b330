"""Archive verification: re-read every file, recompute SHA-256 and size, compare with the
sidecars; report what is altered, missing or orphaned (a file no sidecar lists)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from archiver.errors import SidecarError, StorageError, UnsafeKeyError
from archiver.sidecars import Selection, cannot_read, keys_under, not_archive, prefixes_of, sidecars
from archiver.storage import Storage, iter_chunks

KINDS = ("altered", "missing", "orphaned", "unlisted", "unreadable", "unsafe")


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS ("unlisted": no usable sidecar lists it, but one could not be used)
    key: str
    recording_id: str | None = None
    detail: str | None = None
    sidecar: str | None = None  # the sidecar that lists the file (altered, missing)
    # For an altered or missing file, what its repair needs (archiver verify prints it).
    provider: str | None = None
    call_id: str | None = None
    profile: str | None = None  # None: the original


@dataclass
class VerifyResult:
    recordings: int = 0
    files_checked: int = 0
    bytes_read: int = 0
    orphans_checked: bool = True
    dest: str = ""  # the destination's URL (what the report says was verified)
    findings: list[Finding] = field(default_factory=list)
    # Every file the selected sidecars list (key, SHA-256), and each one this run looked at
    # (key, SHA-256, "ok" or the finding's kind): the catalog remembers those.
    files: list[tuple[str, str]] = field(default_factory=list)
    checked: list[tuple[str, str, str]] = field(default_factory=list)
    sample: str | None = None  # "10%", "200 files" (archiver.compliance.coverage)
    coverage: dict[str, Any] | None = None
    repairs: list[dict[str, Any]] | None = None  # verify --repair (archiver.compliance.repair)

    def report(self) -> dict[str, Any]:
        counts = dict.fromkeys(KINDS, 0)  # every kind, 0 included: `jq -e '.counts.altered == 0'`
        for f in self.findings:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return {
            "schema_version": 1,  # as every JSON document archiver writes (raised on a change of meaning)
            "recordings": self.recordings,
            "files_checked": self.files_checked,
            "bytes_read": self.bytes_read,
            "orphans_checked": self.orphans_checked,
            "counts": counts,
            "findings": [asdict(f) for f in self.findings],
            **({"sample": self.sample} if self.sample else {}),
            **({"coverage": self.coverage} if self.coverage is not None else {}),
            **({"repairs": self.repairs} if self.repairs is not None else {}),
        }


def hash_object(storage: Storage, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(storage, key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def verify_archive(
    storage: Storage,
    selection: Selection,
    *,
    workers: int = 4,
    on_file: Callable[[VerifyResult], None] | None = None,
    pick: Callable[[list[tuple[str, dict[str, Any]]]], list[tuple[str, dict[str, Any]]]] | None = None,
) -> VerifyResult:
    """Check every file the selected sidecars list (or those ``pick`` chooses among the ones
    that are there: a sample). Orphans are looked for only when nothing narrows the
    selection (a narrowed one cannot tell whose a file is). A selection by date lists and
    reads only the folders of its dates where the destination records its layouts."""
    result = VerifyResult(orphans_checked=selection == Selection())
    prefixes = prefixes_of(storage, selection)
    keys = set(keys_under(storage, prefixes))
    listed = tuple(prefixes or ())

    def present(key: str) -> bool:
        # A file outside the folders listed (a sidecar filing it elsewhere) is asked for.
        if key in keys or prefixes is None or key.startswith(listed):
            return key in keys
        try:
            return storage.exists(key)
        except UnsafeKeyError:
            return True  # reported as unsafe when it is read

    referenced: set[str] = set()
    jobs: list[tuple[str, dict[str, Any]]] = []
    owner: dict[str, str] = {}  # file key -> the sidecar listing it
    whose: dict[str, tuple[str | None, str | None]] = {}  # file key -> (provider, call id)
    for item in sidecars(storage, sorted(keys)):
        if isinstance(item, SidecarError):
            # Reported whatever the selection: we cannot tell whose it is.
            result.findings.append(Finding(item.kind, item.key, item.recording_id, item.detail))
            referenced.add(item.key)
            continue
        doc = item.doc
        referenced.add(item.key)
        if not selection.matches(doc):
            referenced.update(f["key"] for f in doc["files"] if f.get("key"))
            continue
        result.recordings += 1
        rid = item.recording_id
        who = (doc["recording"].get("provider"), doc["recording"].get("call_id"))  # what a repair needs
        for f in doc["files"]:
            if not f.get("key"):
                continue
            referenced.add(f["key"])
            owner[f["key"]] = item.key
            whose[f["key"]] = who
            result.files.append((f["key"], f["sha256"]))
            if not present(f["key"]):
                result.findings.append(
                    Finding(
                        "missing",
                        f["key"],
                        rid,
                        "listed in the sidecar, not in storage",
                        item.key,
                        *whose[f["key"]],
                        f.get("profile"),
                    )
                )
                result.checked.append((f["key"], f["sha256"], "missing"))
            else:
                jobs.append((rid, f))

    def check(job: tuple[str, dict[str, Any]]) -> tuple[str | None, int, Finding | None]:
        rid, f = job
        try:
            digest, size = hash_object(storage, f["key"])
            return digest, size, None
        except UnsafeKeyError as exc:  # a local file that is a symlink to outside the archive
            return None, 0, Finding("unsafe", f["key"], rid, str(exc))
        except StorageError as exc:
            if exc.destination_down:  # the archive cannot be read: no finding would be true
                raise cannot_read(storage, exc) from None
            return None, 0, Finding("unreadable", f["key"], rid, str(exc))

    if pick is not None:
        jobs = pick(jobs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        for (rid, f), (digest, size, problem) in zip(jobs, pool.map(check, jobs), strict=True):
            result.files_checked += 1
            result.bytes_read += size
            if problem is not None:
                result.findings.append(problem)
            elif digest != f["sha256"] or size != f["bytes"]:
                problem = Finding(
                    "altered",
                    f["key"],
                    rid,
                    f"{size} bytes, SHA-256 {digest}; the sidecar says {f['bytes']} bytes, {f['sha256']}",
                    owner.get(f["key"]),
                    *whose.get(f["key"], (None, None)),
                    f.get("profile"),
                )
                result.findings.append(problem)
            result.checked.append((f["key"], f["sha256"], problem.kind if problem else "ok"))
            if on_file:
                on_file(result)
    if result.orphans_checked:
        # A sidecar that could not be used may be the one listing a file: then no file is
        # called an orphan (its advice is to restore or remove it), only left unexplained.
        unusable = sum(
            1 for f in result.findings if f.kind in ("unreadable", "unsafe") and f.key.endswith(".json")
        )
        for key in sorted(keys - referenced):
            if not_archive(key):
                continue
            if unusable:
                result.findings.append(
                    Finding(
                        "unlisted",
                        key,
                        None,
                        f"no usable sidecar lists it; {unusable} sidecar(s) could not be used",
                    )
                )
            else:
                result.findings.append(Finding("orphaned", key, None, "no sidecar lists this object"))
    return result
