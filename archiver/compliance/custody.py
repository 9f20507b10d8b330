"""The custody log: a tamper-evident hash chain of what was done to an archive, kept in the
destination itself.

Every state-changing action (an archive run, an export, deletions at the provider, a legal
hold change, a repair, a ``forget``) appends one event, one object each::

    {dest}/_custody/000000000001.jsonl   {"action":"archive","at":...,"prev":null,"seq":1,...}
    {dest}/_custody/000000000002.jsonl   {"action":"export",...,"prev":"<SHA-256 of event 1>",...}

An event is one line of canonical JSON (keys sorted, no spaces, ASCII) and its newline; its
SHA-256 is that of those exact bytes, and each event names its predecessor's. So editing an
event breaks the next one's link, deleting one leaves a gap in the sequence, moving one puts
a sequence number under the wrong name, and ``cat _custody/*.jsonl`` is the chain as JSON
Lines (an export's ``CUSTODY-LOG.jsonl``). The end of the chain has no successor to vouch for
it: the catalog remembers the latest event it saw (its *anchor*), so a truncated or rewritten
end shows there; on S3 with Object Lock the events themselves cannot be changed.

Appends are safe beside each other (an export beside a run, two hosts): the name holds only
the sequence number, so two writers of the same next event race for one name, a create-only
write (:class:`archiver.storage.base.CreateOnly`) lets exactly one win, and the other
re-reads the head and tries the next number.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from archiver import __version__
from archiver.errors import ConfigError, StorageError
from archiver.models import Protection
from archiver.storage.base import CreateOnly, Storage
from archiver.timeutil import iso_z, utcnow

if TYPE_CHECKING:
    from archiver.config import Settings
    from archiver.runner import RunResult
    from archiver.sidecars import Selection

PREFIX = "_custody/"
SCHEMA = "archiver.custody/1"
LOG_FILE = "CUSTODY-LOG.jsonl"  # the chain as an export carries it
CONTENT_TYPE = "application/x-ndjson"
_NAME = re.compile(r"^_custody/(\d{12})\.jsonl$")
# An event is a few hundred bytes; a planted huge object must not be slurped.
MAX_EVENT_BYTES = 4 * 1024 * 1024
# Appends that lose the race for the next number this many times in a row give up.
APPEND_TRIES = 50


def render_event(doc: Mapping[str, Any]) -> bytes:
    """An event's exact bytes: one line of canonical JSON and its newline."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def event_key(seq: int) -> str:
    """``_custody/000000000042.jsonl``: zero-padded, so listing order is chain order."""
    return f"{PREFIX}{seq:012d}.jsonl"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Event:
    """One event of the chain as stored: its sequence number, where, and its exact bytes."""

    seq: int
    where: str  # the object's key, or "line N" of a CUSTODY-LOG.jsonl
    body: bytes

    @property
    def sha256(self) -> str:
        return sha256(self.body)

    @property
    def doc(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        return doc if isinstance(doc, dict) else {}


def actor() -> dict[str, str]:
    """Who acts: user, host and the archiver's version (no credential, no environment)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return {"user": user, "host": socket.gethostname(), "tool": "archiver", "tool_version": __version__}


def event_protection(mode: str | None, retain_days: int | None, now: datetime) -> Protection | None:
    """Object Lock for a custody event when the configuration asks for retention: retained
    ``retain_days`` from now. None otherwise (an S3 bucket's default retention still applies)."""
    if mode and retain_days:
        return Protection(mode, now + timedelta(days=retain_days))
    return None


def _event_keys(storage: Storage) -> list[tuple[int, str]]:
    keys = []
    for key in storage.list_keys(PREFIX):
        m = _NAME.match(key)
        if m:
            keys.append((int(m.group(1)), key))
    return sorted(keys)


def _read(storage: Storage, key: str) -> bytes:
    with storage.open_read(key) as fh:
        return fh.read(MAX_EVENT_BYTES + 1)


def head(storage: Storage) -> Event | None:
    """The chain's last event as stored (whatever it holds: an append links to its bytes)."""
    keys = _event_keys(storage)
    if not keys:
        return None
    seq, key = keys[-1]
    return Event(seq, key, _read(storage, key))


def append(
    storage: Storage,
    action: str,
    details: Mapping[str, Any],
    *,
    protection: Protection | None = None,
    now: datetime | None = None,
) -> Event:
    """Append one event (``action``, ``details``: plain JSON, no secrets) to the chain of
    ``storage``; returns it as written. StorageError when the destination refuses."""
    if not isinstance(storage, CreateOnly):
        raise ConfigError(f"{storage.url} cannot keep a custody log (no create-only writes)")
    for _ in range(APPEND_TRIES):
        last = head(storage)
        seq = last.seq + 1 if last else 1
        doc = {
            "schema": SCHEMA,
            "seq": seq,
            "prev": last.sha256 if last else None,
            "at": iso_z(now or utcnow()),
            "action": action,
            "by": actor(),
            "details": dict(details),
        }
        body = render_event(doc)
        key = event_key(seq)
        if storage.put_new(key, body, content_type=CONTENT_TYPE, protection=protection):
            return Event(seq, key, body)
    raise StorageError(
        f"custody log of {storage.url}: another writer took the next event {APPEND_TRIES} times in a row"
    )


def anchor_broken(storage: Storage, anchor: tuple[int, str, datetime | None] | None) -> str | None:
    """Why the event the catalog last saw (its ``anchor``) is no longer in the chain as it was
    (deleted, or rewritten), or None when it is (or there is no anchor). Checked before the
    anchor moves on: an append after a cut-off head would otherwise carry the anchor past it."""
    if anchor is None:
        return None
    seq, digest, _ = anchor
    if not storage.exists(event_key(seq)):
        return f"event {seq}, which this catalog saw, is gone from the custody log"
    if sha256(_read(storage, event_key(seq))) != digest:
        return f"event {seq} of the custody log is not the one this catalog saw (rewritten)"
    return None


# --- reading and checking the chain ---------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A broken or missing link: which event (sequence number), where, and what is wrong."""

    seq: int | None
    where: str
    detail: str

    def __str__(self) -> str:
        return (
            f"event {self.seq} ({self.where}): {self.detail}" if self.seq else f"{self.where}: {self.detail}"
        )


@dataclass
class ChainCheck:
    """The events read in order and every problem found; ``problems[0]`` is the first break."""

    events: list[Event] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None

    def summary(self) -> dict[str, Any]:
        """What an export's CUSTODY.json says of the segment it carries."""
        last = self.last
        return {
            "file": LOG_FILE,
            "events": len(self.events),
            "head_seq": last.seq if last else None,
            "head_sha256": last.sha256 if last else None,
            "verified": self.ok,
            "problems": [str(p) for p in self.problems],
        }


def stored_events(storage: Storage) -> Iterator[tuple[int | None, str, bytes]]:
    """Every object under ``_custody/`` in key order: (its number by name, key, bytes);
    the number is None for a name that is not an event's."""
    for key in sorted(storage.list_keys(PREFIX)):
        m = _NAME.match(key)
        yield (int(m.group(1)) if m else None), key, _read(storage, key)


def log_lines(data: bytes) -> Iterator[tuple[int | None, str, bytes]]:
    """The events of a ``CUSTODY-LOG.jsonl`` (line N is event N), as :func:`stored_events`."""
    for n, line in enumerate(data.splitlines(keepends=True), start=1):
        yield n, f"line {n}", line


def check_chain(
    items: Iterable[tuple[int | None, str, bytes]],
    anchor: tuple[int, str, datetime | None] | None = None,
) -> ChainCheck:
    """Walk the chain: every event where its number says, in canonical form, linked to the
    one before by SHA-256, none missing; and, given the catalog's ``anchor`` (seq, SHA-256,
    seen at), the event it saw still there and unchanged."""
    check = ChainCheck()
    broken: set[int] = set()  # events already reported: one edit is named once
    expected = 1
    prev: Event | None = None

    def problem(seq: int | None, where: str, detail: str) -> None:
        check.problems.append(Problem(seq, where, detail))
        if seq is not None:
            broken.add(seq)

    for seq, where, body in items:
        if seq is None:
            problem(None, where, "not a custody event's name (expected _custody/<12 digits>.jsonl)")
            continue
        linked = prev is not None and prev.seq == seq - 1
        if seq > expected:
            missing = f"event {expected}" if seq == expected + 1 else f"events {expected} to {seq - 1}"
            problem(expected, event_key(expected), f"missing: {missing} deleted (the next is event {seq})")
        expected = seq + 1
        event = Event(seq, where, body)
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError(f"a JSON {type(doc).__name__}")
        except (ValueError, UnicodeDecodeError) as exc:
            problem(seq, where, f"not a custody event ({exc}): altered or replaced")
            prev = event
            continue
        prev, previous = event, prev
        if doc.get("schema") != SCHEMA or doc.get("seq") != seq:
            problem(seq, where, f"holds event {doc.get('seq')!r}, not {seq}: moved, reordered or replaced")
            continue
        check.events.append(event)
        if render_event(doc) != body:
            problem(seq, where, "rewritten: its bytes are not the canonical line archiver writes")
        if seq == 1 and doc.get("prev") is not None:
            problem(seq, where, "the first event names a predecessor: the chain's start was cut off")
        elif (
            linked
            and previous is not None
            and doc.get("prev") != previous.sha256
            and previous.seq not in broken
        ):
            problem(
                previous.seq,
                previous.where,
                f"altered or replaced: its SHA-256 is {previous.sha256}, but event {seq} "
                f"links to {doc.get('prev')}",
            )
    if anchor is not None:
        seq, digest, seen = anchor
        when = f" on {iso_z(seen)}" if seen else ""
        last = check.last
        if last is None or last.seq < seq:
            ends = f"ends at event {last.seq}" if last else "is empty"
            problem(
                seq,
                event_key(seq),
                f"missing: the chain {ends}, but this catalog saw event {seq}{when}: the end was deleted",
            )
        else:
            seen_event = next((e for e in check.events if e.seq == seq), None)
            if seen_event is not None and seen_event.sha256 != digest and seq not in broken:
                problem(
                    seq,
                    seen_event.where,
                    f"altered or replaced: this catalog saw it{when} with SHA-256 {digest}, "
                    f"it is now {seen_event.sha256}",
                )
    check.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return check


def read_segment(storage: Storage) -> tuple[bytes, ChainCheck]:
    """The whole chain of ``storage`` as ``CUSTODY-LOG.jsonl`` bytes, and its check."""
    items = list(stored_events(storage))
    check = check_chain(items)
    return b"".join(body for seq, _, body in items if seq is not None), check


def describe(event: Event) -> str:
    """One line of ``archiver custody show``: number, time, action, who, the details' scalars."""
    try:
        doc = event.doc
    except ValueError:
        return f"{event.seq:>6}  (not a custody event: {event.where})"
    by: dict[str, Any] = doc["by"] if isinstance(doc.get("by"), dict) else {}
    details: dict[str, Any] = doc["details"] if isinstance(doc.get("details"), dict) else {}
    parts = []
    for name, value in sorted(details.items()):
        if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
            value = ",".join(f"{k}={v}" for k, v in value.items() if v not in (None, 0, ""))
        elif isinstance(value, list):
            value = f"[{len(value)}]"
        if value not in (None, "", [], {}):
            parts.append(f"{name}={value}")
    who = f"{by.get('user', '?')}@{by.get('host', '?')}"
    return f"{event.seq:>6}  {doc.get('at')}  {doc.get('action', '?'):<10}  {who}  {' '.join(parts)}"


# --- the events of each action -------------------------------------------------------------


def log_event(storage: Storage, settings: Settings, action: str, details: Mapping[str, Any]) -> Event:
    """Append an event with the configured Object Lock retention, if any (``[s3]
    object_lock_mode`` + ``retain_days``, counted from now); else the bucket's default."""
    now = utcnow()
    lock = event_protection(settings.s3.object_lock_mode, settings.s3.retain_days, now)
    return append(storage, action, details, protection=lock, now=now)


def selection_json(selection: Selection) -> dict[str, Any]:
    """A selection as an event records it: set fields only, times in UTC, a number masked (the
    log travels with every later export, masked or not)."""
    out: dict[str, Any] = {}
    for name, value in asdict(selection).items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = iso_z(value)
        elif name == "number":
            from archiver.compliance.export import mask_number

            value = mask_number(value)
        out[name] = value
    return out


def run_details(result: RunResult) -> dict[str, Any]:
    """An archive run's summary: what it did, not the recordings' ids (the sidecars say)."""
    from archiver.runner import STATUSES

    return {
        "run_id": result.run_id,
        "command": result.command,
        "provider": result.provider,
        "account": result.account,
        "listed": result.listed,
        "counts": {s: result.counts[s] for s in STATUSES},
        "bytes_written": result.bytes_written,
        "exit_code": int(result.exit_code),
    }


def deletion_details(result: RunResult) -> dict[str, Any] | None:
    """Recordings deleted at the provider by a run (each after its copy verified), or None."""
    done = [d for d in result.deletions or () if d["result"] in ("deleted", "already-gone")]
    if not done:
        return None
    return {
        "run_id": result.run_id,
        "provider": result.provider,
        "account": result.account,
        "deletions": [
            {
                "recording_id": d["recording_id"],
                "result": d["result"],
                "verified_sha256": d["verified_sha256"],
            }
            for d in done
        ],
    }
