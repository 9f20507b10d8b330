"""Compliance export: the selected recordings' files and sidecars, manifests, ``SHA256SUMS``,
``CUSTODY.json`` and the viewer ``index.html``, into a folder, a ``.zip`` or S3 (or a BagIt
bag of all that: :mod:`archiver.compliance.bagit`). Read-only over the archive; every file
is re-hashed while it is copied and must match its sidecar, or the export fails.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import getpass
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from archiver import __version__
from archiver.compliance.viewer import RecordingView, recording_view, render_index
from archiver.errors import (
    ArchiverError,
    ConfigError,
    ExportError,
    SidecarError,
    StorageError,
    UnsafeKeyError,
)
from archiver.models import check_key
from archiver.sidecars import Archived, Selection, archived
from archiver.storage import CHUNK, Storage
from archiver.timeutil import iso_z

MANIFEST_FIELDS = (
    "provider",
    "recording_id",
    "call_id",
    "started_at",
    "from_number",
    "to_number",
    "role",
    "key",
    "bytes",
    "sha256",
    "duration_seconds",
)


class Sink(Protocol):
    """Where an export is written. ``write`` hashes what it writes."""

    def write(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class TagSink(Sink, Protocol):
    """A sink that keeps the export as a payload under ``payload_dir`` with tag files beside
    it (a BagIt bag, :mod:`archiver.compliance.bagit`): the viewer goes there, as a tag."""

    payload_dir: str

    def write_tag(self, name: str, chunks: Iterable[bytes]) -> tuple[str, int]: ...


class _Hashing:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.digest.update(chunk)
            self.size += len(chunk)
            yield chunk


class FolderSink:
    """A new folder, built beside its final name and renamed into place when complete."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ConfigError(f"--out {out} exists and is not empty: exports go to a new place")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))

    def write(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        path = self.tmp / check_key("export key", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        hashing = _Hashing(chunks)
        with open(path, "wb") as fh:
            for chunk in hashing:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        return hashing.digest.hexdigest(), hashing.size

    def commit(self) -> None:
        if self.out.exists():
            self.out.rmdir()  # empty, checked above
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class ZipSink:
    """A ``.zip`` (ZIP64, stored: audio does not compress), written to ``.part`` first."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        if self.out.exists():
            raise ConfigError(f"--out {out} exists: exports go to a new place")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.with_name(self.out.name + ".part")
        self.zf = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def write(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        hashing = _Hashing(chunks)
        with self.zf.open(check_key("export key", key), "w", force_zip64=True) as fh:
            for chunk in hashing:
                fh.write(chunk)
        return hashing.digest.hexdigest(), hashing.size

    def commit(self) -> None:
        self.zf.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):  # a full disk fails the close too
                self.zf.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


class StorageSink:
    """Any Storage (S3): each file spooled to a local temp file while hashing, then uploaded
    with its checksum. On abort, what was uploaded is deleted again."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        if any(True for _ in storage.list_keys()):
            raise ConfigError(f"--out {storage.url} is not empty: exports go to a new place")
        self.written: list[str] = []

    def write(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        check_key("export key", key)
        hashing = _Hashing(chunks)
        with tempfile.NamedTemporaryFile(
            dir=self.storage.staging_dir(), prefix=f".fetch-{os.getpid()}-"
        ) as tmp:
            for chunk in hashing:
                tmp.write(chunk)
            tmp.flush()
            digest = hashing.digest.hexdigest()
            self.storage.put_file(key, tmp.name, content_type=_content_type(key), sha256=digest)
        self.written.append(key)
        return digest, hashing.size

    def commit(self) -> None:
        self.storage.close()

    def abort(self) -> None:
        for key in self.written:
            with contextlib.suppress(ArchiverError):
                self.storage.delete(key)
        self.storage.close()


def _content_type(key: str) -> str:
    from archiver.models import CONTENT_TYPES

    if key.endswith(".html"):  # the viewer, opened from the bucket
        return "text/html; charset=utf-8"
    return CONTENT_TYPES.get(
        key.rsplit(".", 1)[-1],
        "text/plain" if key.endswith(("SUMS", ".csv", ".txt", ".jsonl")) else "application/octet-stream",
    )


def _mask_in(text: str, number: str | None) -> str:
    """``text`` with ``number`` (as given) masked wherever it appears."""
    return text.replace(number, mask_number(number) or "") if number else text


def mask_number(value: str | None) -> str | None:
    """All digits but the last four replaced by ``*``; a SIP user part likewise."""
    if not value:
        return value
    digits = sum(c.isdigit() for c in value)
    if digits >= 4:
        seen = 0
        out = []
        for c in value:
            if c.isdigit():
                seen += 1
                out.append(c if seen > digits - 4 else "*")
            else:
                out.append(c)
        return "".join(out)
    if "@" in value:
        user, _, host = value.partition("@")
        scheme, _, name = user.rpartition(":")
        return f"{scheme + ':' if scheme else ''}{'*' * len(name)}@{host}"
    return "*" * len(value)


@dataclass(frozen=True)
class ExportResult:
    recordings: int
    files: int
    bytes: int
    manifest_sha256: str
    excluded: tuple[dict[str, str | None], ...] = ()
    export_id: str = ""  # the SHA-256 of its CUSTODY.json (the viewer and a bag name it so)
    custody_error: str | None = None  # the source's custody log refused the export's event


# The export's own files: no archived key may take their place.
EXPORT_FILES = (
    "manifest.json",
    "manifest.csv",
    "CUSTODY.json",
    "CUSTODY-LOG.jsonl",
    "SHA256SUMS",
    "index.html",
)


def run_export(
    source: Storage,
    sink: Sink,
    selection: Selection,
    *,
    with_renditions: bool = False,
    mask_numbers: bool = False,
    command_line: str = "",
    custody_log: tuple[bytes, dict[str, Any]] | None = None,
) -> ExportResult:
    """Copy, verify and describe the selected recordings. Commits the sink only when every
    file copied matched its sidecar; otherwise aborts it and raises ExportError.

    A sidecar that cannot be trusted to describe a recording (unreadable, or ``unsafe``: a key
    or id that would reach outside the export or the archive, a key another sidecar already
    exported) is not evidence of anything: it is left out, before any of its files is written,
    and listed in ``CUSTODY.json`` (``excluded``) and in the result, so the auditor gets every
    recording that can be trusted and an exact account of what is missing and why. A file
    that does not match a good sidecar, or cannot be read, still abandons the export: shipping
    it would put contradicting evidence in the auditor's hands.

    ``layout`` (the archive's) lets a selection by date read only the folders of its dates.
    ``custody_log`` (the source's custody chain as JSON Lines, and what its check found) goes
    in as ``CUSTODY-LOG.jsonl``, described in ``CUSTODY.json`` (``custody_log``)."""
    rows: list[dict[str, Any]] = []
    sums: list[tuple[str, str]] = []
    excluded: list[dict[str, str | None]] = []
    views: list[RecordingView] = []
    masker = mask_number if mask_numbers else None
    written: set[str] = set(EXPORT_FILES)
    recordings = 0
    total = 0

    def exclude(problem: SidecarError) -> None:
        excluded.append(
            {
                "sidecar": problem.key,
                "kind": problem.kind,
                "recording_id": problem.recording_id,
                "detail": problem.detail,
            }
        )

    try:
        for item in archived(source, selection, on_problem=exclude):
            rid = item.recording_id
            files = _files(item, with_renditions)
            keys = [f["key"] for f in files] + [item.key]
            clash = next((k for i, k in enumerate(keys) if k in written or k in keys[:i]), None)
            if clash is not None:
                exclude(
                    SidecarError("unsafe", item.key, f"{clash} is exported already (by another sidecar)", rid)
                )
                continue
            with contextlib.ExitStack() as opened:
                try:  # every file opened before one is written: nothing partial of a left-out one
                    handles = [opened.enter_context(source.open_read(f["key"])) for f in files]
                except UnsafeKeyError as exc:  # a local file that is a symlink to outside
                    exclude(SidecarError("unsafe", item.key, str(exc), rid))
                    continue
                try:
                    for f, fh in zip(files, handles, strict=True):
                        digest, size = sink.write(f["key"], _read_chunks(fh))
                        if digest != f["sha256"] or size != f["bytes"]:
                            raise ExportError(
                                f"recording {rid}: {f['key']} is {size} bytes with SHA-256 {digest}, "
                                f"its sidecar says {f['bytes']} bytes with {f['sha256']}: export abandoned"
                            )
                        sums.append((digest, f["key"]))
                        total += size
                        rows.append(_row(item, f, mask_numbers))
                except StorageError as exc:
                    raise ExportError(f"recording {rid}: {exc}: export abandoned") from None
            recordings += 1
            views.append(recording_view(item.doc, files, masker))
            written.update(keys)
            # The sidecar's bytes as they were validated, not a second read that could differ.
            digest, size = sink.write(item.key, [item.body])
            sums.append((digest, item.key))
            total += size
        manifest_json = (json.dumps(rows, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
        manifest_csv = buf.getvalue().encode()
        manifest_sha, _ = sink.write("manifest.json", [manifest_json])
        csv_sha, _ = sink.write("manifest.csv", [manifest_csv])
        sums += [(manifest_sha, "manifest.json"), (csv_sha, "manifest.csv")]
        custody = {
            "tool": "archiver",
            "tool_version": __version__,
            "run_by": _user(),
            "host": socket.gethostname(),
            "created_at": iso_z(datetime.now(UTC)),
            # Masked exports mask the number they were asked for too (on the command line and
            # in the selection): the handover must not name it where the rows do not.
            "command": _mask_in(command_line, selection.number) if mask_numbers else command_line,
            "source": source.url,
            "selection": {
                k: iso_z(v)
                if isinstance(v, datetime)
                else (mask_number(v) if k == "number" and mask_numbers else v)
                for k, v in asdict(selection).items()
            },
            "options": {"with_renditions": with_renditions, "mask_numbers": mask_numbers},
            "counts": {
                "recordings": recordings,
                "files": len(rows),
                "bytes": total,
                "excluded": len(excluded),
            },
            "excluded": excluded,
            "manifest_json_sha256": manifest_sha,
            "manifest_csv_sha256": csv_sha,
        }
        if custody_log is not None:
            log_sha, _ = sink.write("CUSTODY-LOG.jsonl", [custody_log[0]])
            sums.append((log_sha, "CUSTODY-LOG.jsonl"))
            custody["custody_log"] = custody_log[1] | {"sha256": log_sha}
        custody_body = (json.dumps(custody, indent=2, sort_keys=True) + "\n").encode()
        custody_sha, _ = sink.write("CUSTODY.json", [custody_body])
        sums.append((custody_sha, "CUSTODY.json"))
        page = functools.partial(render_index, views, custody, export_id=custody_sha, mask=masker)
        if isinstance(sink, TagSink):  # a bag: the viewer is a tag file at its root, beside data/
            sink.write_tag("index.html", [page(base=sink.payload_dir, check_with="bagit.py --validate")])
        else:
            index_sha, _ = sink.write("index.html", [page()])
            sums.append((index_sha, "index.html"))
        sink.write("SHA256SUMS", ["".join(f"{d}  {k}\n" for d, k in sums).encode()])
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return ExportResult(recordings, len(rows), total, manifest_sha, tuple(excluded), custody_sha)


def _read_chunks(fh: BinaryIO) -> Iterator[bytes]:
    yield from iter(lambda: fh.read(CHUNK), b"")


def _files(item: Archived, with_renditions: bool) -> list[dict[str, Any]]:
    return [f for f in item.doc["files"] if f.get("key") and (f["role"] == "original" or with_renditions)]


def _row(item: Archived, f: dict[str, Any], mask: bool) -> dict[str, Any]:
    rec = item.doc["recording"]
    row = {
        "provider": rec.get("provider"),
        "recording_id": rec.get("recording_id"),
        "call_id": rec.get("call_id"),
        "started_at": rec.get("started_at"),
        "from_number": rec.get("from_number"),
        "to_number": rec.get("to_number"),
        "role": f["role"],
        "key": f["key"],
        "bytes": f["bytes"],
        "sha256": f["sha256"],
        "duration_seconds": f.get("duration_seconds"),
    }
    if mask:
        row["from_number"] = mask_number(row["from_number"])
        row["to_number"] = mask_number(row["to_number"])
    return row


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): =, +, -, @, tab, CR;
# a plain signed number (an E.164 phone number, +14155551234) is not one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"[+-]\d+(\.\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell an auditor can open in Excel or LibreOffice safely: a text that
    would start a formula (a provider's ``call_id`` of ``=HYPERLINK(...)``) gets a leading
    apostrophe, which spreadsheets show as text. Numbers stay numbers; manifest.json keeps
    every value exactly."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _SIGNED_NUMBER.fullmatch(value):
        return "'" + value
    return value
