"""Choosing archived recordings by their sidecars (``export``, ``transcode``, ``verify``)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain, takewhile
from typing import Any, Protocol, runtime_checkable

from archiver.errors import SidecarError, StorageError, StorageUnavailable, UnsafeKeyError
from archiver.models import RESERVED, SIDECAR_SCHEMA, check_key, check_key_part, check_not_reserved
from archiver.storage.base import CreateOnly, Storage
from archiver.timeutil import lenient_time

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """Which recordings: started in ``[since, until)``, of a provider, a call, a number."""

    since: datetime | None = None
    until: datetime | None = None
    provider: str | None = None
    call_id: str | None = None
    number: str | None = None

    def matches(self, doc: Mapping[str, Any]) -> bool:
        rec = doc.get("recording") or {}
        if self.provider and rec.get("provider") != self.provider:
            return False
        if self.call_id and rec.get("call_id") != self.call_id:
            return False
        if self.number and same_number_key(self.number) not in (
            same_number_key(rec.get("from_number")),
            same_number_key(rec.get("to_number")),
        ):
            return False
        if self.since or self.until:
            started = lenient_time(rec.get("started_at"))
            if started is None:
                return False
            if self.since and started < self.since:
                return False
            if self.until and started >= self.until:
                return False
        return True


_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


def same_number_key(value: Any) -> str | None:
    """A phone number as compared by ``--number``: E.164 (``+14155551229``) and the forms
    providers write (``14155551229``, a number rather than a string, ``+1 415-555-1229``) are
    one number; anything else, ``sip:`` URIs included, is compared exactly as written."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    digits = _PHONE_PUNCTUATION.sub("", text).removeprefix("+")
    return digits if digits.isdigit() and digits.isascii() else text


@dataclass(frozen=True)
class Archived:
    """One archived recording as its sidecar describes it: ``doc`` was validated by
    ``parse_sidecar`` and ``body`` is the exact bytes it was parsed from."""

    key: str
    doc: dict[str, Any]
    body: bytes = b""

    @property
    def recording_id(self) -> str:
        return str(self.doc["recording"]["recording_id"])


# Largest sidecar read. Real ones are a few KiB; a planted multi-GB ".json" must not be
# slurped into memory by verify or export.
MAX_SIDECAR_BYTES = 16 * 1024 * 1024
# What archiver itself may leave at the root of a destination (an export's files) that is
# not a sidecar. ``manifest.json`` is a list: without this it would count as unreadable.
NOT_ARCHIVE = ("manifest.json", "manifest.csv", "SHA256SUMS", "CUSTODY.json", "CUSTODY-LOG.jsonl")


def not_archive(key: str) -> bool:
    """Whether ``key`` is the destination's own (an export's files at its root, the custody
    log under ``_custody/``) rather than a recording's file or sidecar."""
    return key in NOT_ARCHIVE or key.startswith(RESERVED)


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ROLES = ("original", "rendition")


def parse_sidecar(key: str, body: bytes) -> dict[str, Any] | None:
    """The one place a sidecar is read and validated: its document, or None when the JSON at
    ``key`` is an object that is not a sidecar of ours (no ``archiver.sidecar/`` schema: a
    report, somebody's notes). Raises SidecarError ``unreadable`` (not UTF-8 JSON, not an
    object, too deep, a schema this archiver does not know, missing or mistyped fields) or
    ``unsafe`` (the sidecar's key, a file key, its recording id, provider, account, a format or
    profile would not pass as a key part: reading or exporting it could reach outside).

    Everything a caller indexes afterwards (``recording`` fields, ``files[]`` entries with
    ``role``, ``key``, ``format``, ``bytes``, ``sha256``) is checked here, so no caller needs
    a ``try`` around ``doc[...]``."""

    def bad(detail: str, kind: str = "unreadable", rid: str | None = None) -> SidecarError:
        return SidecarError(kind, key, detail, rid)

    try:
        check_key("sidecar key", key)
    except UnsafeKeyError as exc:
        raise bad(str(exc), "unsafe") from None
    if len(body) > MAX_SIDECAR_BYTES:
        raise bad(f"larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise bad("nested too deeply to be a sidecar") from None
    except ValueError as exc:
        raise bad(f"not JSON ({exc})" if body.strip() else "empty") from None
    if not isinstance(doc, dict):
        raise bad(f"a JSON {type(doc).__name__}, not an object")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("archiver.sidecar/"):
        return None
    if schema != SIDECAR_SCHEMA:
        raise bad(f"schema {schema!r} is not {SIDECAR_SCHEMA!r}: written by a newer archiver?")
    rec = doc.get("recording")
    if not isinstance(rec, dict):
        raise bad("'recording' is not an object")
    rid = rec.get("recording_id")
    for field_name in ("recording_id", "provider", "account"):
        value = rec.get(field_name)
        if not isinstance(value, str):
            raise bad(f"recording.{field_name} is {value!r}, not a string")
        try:
            check_key_part(f"recording.{field_name}", value)
            check_key(f"recording.{field_name}", value)  # and no leading "."
        except UnsafeKeyError as exc:
            raise bad(str(exc), "unsafe") from None
    files = doc.get("files")
    if not isinstance(files, list):
        raise bad(
            f"'files' is {type(files).__name__ if files is not None else 'missing'}, not a list", rid=rid
        )
    for i, f in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(f, dict):
            raise bad(f"{where} is not an object", rid=rid)
        if f.get("role") not in _ROLES:
            raise bad(f"{where}.role is {f.get('role')!r}, not one of {', '.join(_ROLES)}", rid=rid)
        if not isinstance(f.get("bytes"), int) or isinstance(f.get("bytes"), bool) or f["bytes"] < 0:
            raise bad(f"{where}.bytes is {f.get('bytes')!r}, not a size", rid=rid)
        if not isinstance(f.get("sha256"), str) or not _SHA256.match(f["sha256"]):
            raise bad(f"{where}.sha256 is {f.get('sha256')!r}, not a SHA-256", rid=rid)
        try:
            if f.get("key") is not None:  # null: an original not kept (--no-keep-original)
                check_not_reserved(f"{where}.key", check_key(f"{where}.key", f.get("key")))
            check_key(f"{where}.format", f.get("format"))
            if f.get("profile") is not None:
                check_key(f"{where}.profile", f.get("profile"))
        except UnsafeKeyError as exc:
            raise bad(str(exc), "unsafe", rid) from None
    return doc


def read_sidecar(storage: Storage, key: str) -> dict[str, Any] | None:
    """The validated sidecar at ``key`` (see ``parse_sidecar``), or None when the JSON there
    is not one of ours. StorageError when it cannot be read at all."""
    return _read(storage, key)[0]


def _read(storage: Storage, key: str) -> tuple[dict[str, Any] | None, bytes]:
    try:
        check_key("sidecar key", key)  # before any I/O
    except UnsafeKeyError as exc:
        raise SidecarError("unsafe", key, str(exc)) from None
    try:
        with storage.open_read(key) as fh:
            body = fh.read(MAX_SIDECAR_BYTES + 1)
    except UnsafeKeyError as exc:  # a local sidecar that is a symlink to outside the archive
        raise SidecarError("unsafe", key, str(exc)) from None
    return parse_sidecar(key, body), body


def sidecars(storage: Storage, keys: Iterable[str] | None = None) -> Iterator[Archived | SidecarError]:
    """Every sidecar among ``keys`` (default: every ``.json`` of ``storage``), validated, in
    order; what cannot be used comes as its SidecarError instead, so one odd file never stops
    a command. Non-sidecar JSON (and an export's own files at the root) is passed over."""
    for key in storage.list_keys() if keys is None else keys:
        if not key.endswith(".json") or not_archive(key):
            continue
        try:
            doc, body = _read(storage, key)
        except SidecarError as exc:
            yield exc
            continue
        except StorageError as exc:
            if exc.destination_down:  # no permission, a dead disk: every read fails alike
                raise cannot_read(storage, exc) from None
            yield SidecarError("unreadable", key, str(exc))
            continue
        if doc is not None:
            yield Archived(key, doc, body)


def cannot_read(storage: Storage, exc: StorageError) -> StorageUnavailable:
    """The fatal error of a destination that cannot be read: a command that went on would
    take what it could not read for what is not there (an empty archive, orphaned files)."""
    return StorageUnavailable(f"cannot read the archive at {storage.url}: {exc}")


@runtime_checkable
class ListsFolders(Protocol):
    """The capability of naming the folders (S3: common prefixes) right under a prefix."""

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        """The names of the folders directly under ``prefix`` (which ends with ``/`` or is
        empty), sorted."""
        ...


# Narrowing gives up (and the whole archive is listed, as before) past this many prefixes, or
# when a date range would take more steps than this to walk.
MAX_PREFIXES = 5000
MAX_STEPS = 200_000
_BY_HOUR = re.compile(r"%[HIpz]")
# Finer than an hour (minutes, seconds, times, epoch seconds): not enumerated, read whole.
_FINER = re.compile(r"%[MSfXcTRrs]")


def selected_prefixes(
    layout: str | None, selection: Selection, folders: ListsFolders | None
) -> list[str] | None:
    """The key prefixes that hold every sidecar ``selection`` can pick under ``layout``, so a
    command selecting one day lists and reads that day's folders, not the whole archive. None
    when nothing narrows it (list everything).

    The folders of the layout are taken in order: a literal one is kept; one made of
    ``{provider}``/``{account}`` is listed (``folders``) or, for ``{provider}`` with
    ``--provider``, named; one made of ``{started:...}`` parts is enumerated over
    ``[since, until)`` (a recording is filed under its start, in UTC, as the sidecar's
    ``started_at`` says). The first folder that depends on anything else ends the narrowing.
    Every sidecar found is still checked by ``selection.matches``: prefixes only narrow."""
    if layout is None:
        return None
    prefixes = [""]
    narrowed = False  # listing folders alone narrows nothing: some value must pick among them
    segments = layout.split("/")[:-1]
    kinds = [_kind(s) for s in segments]
    i = 0
    while i < len(segments):
        segment, kind, narrows, taken = segments[i], kinds[i], False, 1
        if kind == "literal":
            step: list[str] | None = [p + segment + "/" for p in prefixes]
        elif kind == "folder":
            step = _listed(segment, prefixes, selection, folders)
            narrows = segment == "{provider}" and bool(selection.provider)
        elif kind == "dated":
            # Consecutive date folders are walked together (2024/01/15, not every year x
            # every month x every day); as many of them as stay under MAX_PREFIXES.
            run = len(list(takewhile(lambda k: k == "dated", kinds[i:])))
            step = None
            for taken in range(run, 0, -1):
                step = _dated("/".join(segments[i : i + taken]), prefixes, selection)
                if step is None or len(step) <= MAX_PREFIXES:
                    break
            narrows = True
        else:
            step = None
        if step is None or len(step) > MAX_PREFIXES:
            break
        prefixes, narrowed = step, narrowed or narrows
        i += taken
    return prefixes if narrowed else None


def _kind(segment: str) -> str:
    names = {name for _, name, _, _ in string.Formatter().parse(segment) if name is not None}
    if not names:
        return "literal"
    if names <= {"provider", "account"}:
        return "folder"
    return "dated" if names == {"started"} else "other"


def _listed(
    segment: str, prefixes: list[str], selection: Selection, folders: ListsFolders | None
) -> list[str] | None:
    if segment == "{provider}" and selection.provider:
        return [f"{p}{selection.provider}/" for p in prefixes]
    if folders is None:
        return None
    return [f"{p}{name}/" for p in prefixes for name in folders.list_folders(p)]


def _dated(segment: str, prefixes: list[str], selection: Selection) -> list[str] | None:
    if selection.since is None or selection.until is None or selection.since >= selection.until:
        return None
    since, until = selection.since.astimezone(UTC), selection.until.astimezone(UTC)
    if _FINER.search(segment):
        return None
    if _BY_HOUR.search(segment):
        unit, start = timedelta(hours=1), since.replace(minute=0, second=0, microsecond=0)
    else:
        unit, start = timedelta(days=1), since.replace(hour=0, minute=0, second=0, microsecond=0)
    if (until - start) / unit > MAX_STEPS:
        return None
    values: dict[str, None] = {}
    at = start
    while at < until:
        values[segment.format(started=at)] = None
        at += unit
    return [f"{p}{v}/" for p in prefixes for v in values]


# Every layout an archive run wrote with is recorded in the destination, one small object
# each: a selection narrows by the layouts the archive really has, not by today's settings
# (an archive written with another --layout, or whose layout changed over the years).
LAYOUTS_PREFIX = "_layouts/"


def layout_key(layout: str) -> str:
    """``_layouts/<hash>.layout`` (JSON inside; not ``.json``, which names sidecars)."""
    return f"{LAYOUTS_PREFIX}{hashlib.sha256(layout.encode()).hexdigest()[:16]}.layout"


def record_layout(storage: Storage, layout: str) -> None:
    """Say in the destination that recordings are filed under ``layout`` (once per layout;
    before any is written by it). StorageError when the destination refuses."""
    key = layout_key(layout)
    if storage.exists(key):
        return
    body = (json.dumps({"layout": layout}, sort_keys=True) + "\n").encode()
    if isinstance(storage, CreateOnly):
        storage.put_new(key, body, content_type="application/json")
    else:
        storage.put_bytes(key, body, content_type="application/json")


def recorded_layouts(storage: Storage) -> list[str] | None:
    """The layouts the destination says it holds recordings under; None when it says none
    (an archive from before they were recorded) or one cannot be read."""
    layouts = []
    for key in storage.list_keys(LAYOUTS_PREFIX):
        try:
            with storage.open_read(key) as fh:
                doc = json.loads(fh.read(65536))
            layout = doc["layout"]
        except (StorageError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(layout, str) or key != layout_key(layout):
            return None  # not one we wrote: trust none of them
        layouts.append(layout)
    return layouts or None


def prefixes_of(storage: Storage, selection: Selection) -> list[str] | None:
    """The prefixes that hold every sidecar ``selection`` can pick in ``storage``: those of
    each layout the destination records (:func:`recorded_layouts`: not today's setting, which
    need not be the archive's), or None (read it whole) when it records none or one of them
    cannot be narrowed."""
    if selection.since is None or selection.until is None:
        return None  # nothing a layout's folders could narrow: no need to ask the destination
    layouts = recorded_layouts(storage)
    if layouts is None:
        return None
    folders = storage if isinstance(storage, ListsFolders) else None
    found: dict[str, None] = {}
    for used in layouts:
        prefixes = selected_prefixes(used, selection, folders)
        if prefixes is None:
            return None
        found.update(dict.fromkeys(prefixes))
    return list(found)


def keys_under(storage: Storage, prefixes: list[str] | None) -> Iterator[str]:
    """The keys under ``prefixes`` in order, or every key of ``storage`` for None."""
    if prefixes is None:
        return storage.list_keys()
    return chain.from_iterable(storage.list_keys(p) for p in prefixes)


def selected(storage: Storage, selection: Selection) -> Iterator[Archived | SidecarError]:
    """Every selected recording of ``storage`` in key order, and in its place every sidecar
    that cannot be used (whose selection cannot be told): the caller reports those. Where the
    destination records its layouts, only the folders the selection can reach are listed and
    read (:func:`prefixes_of`)."""
    for item in sidecars(storage, keys_under(storage, prefixes_of(storage, selection))):
        if isinstance(item, SidecarError) or selection.matches(item.doc):
            yield item


def archived(
    storage: Storage,
    selection: Selection,
    on_problem: Callable[[SidecarError], None] | None = None,
) -> Iterator[Archived]:
    """Every selected recording of ``storage``, read from its sidecar (the truth). Sidecars
    that cannot be used go to ``on_problem`` (default: logged as errors) and are passed over.
    What is listed is narrowed as in :func:`selected`."""
    for item in selected(storage, selection):
        if isinstance(item, Archived):
            yield item
        elif on_problem is not None:
            on_problem(item)
        else:
            log.error("%s", item)
