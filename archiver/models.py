"""The values that flow through the pipeline, and pure helpers over them (keys, sidecars)."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from archiver.errors import ConfigError, UnsafeKeyError
from archiver.timeutil import iso_z

SIDECAR_SCHEMA = "archiver.sidecar/1"
DEFAULT_LAYOUT = "{provider}/{account}/{started:%Y}/{started:%m}/{started:%d}/{recording_id}.{ext}"
LAYOUT_FIELDS = frozenset({"provider", "account", "recording_id", "call_id", "started", "ext"})

CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "json": "application/json",
}

State = Literal["complete", "pending", "error"]
Status = Literal["archived", "skipped", "pending", "failed", "unavailable"]


@dataclass(frozen=True)
class Recording:
    """One provider recording, normalised. ``raw`` is the provider's JSON object verbatim."""

    provider: str
    account: str
    recording_id: str
    state: State
    provider_state: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    media_url: str | None
    format_hint: str | None
    raw: Mapping[str, Any]
    call_id: str | None = None
    conference_name: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class Probe:
    """What mutagen could read of a file; ``error`` says what it could not."""

    duration_seconds: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bitrate: int | None = None
    codec: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A media body streamed to a local file, with what was learned while streaming."""

    path: str
    bytes: int
    sha256: str
    format: str
    media_url: str
    fetched_at: datetime


@dataclass(frozen=True)
class StoredFile:
    """One file of a recording as written to the destination."""

    role: Literal["original", "rendition"]
    key: str | None  # None: an original not kept (--no-keep-original)
    format: str
    bytes: int
    sha256: str
    probe: Probe
    profile: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The sidecar's ``files[]`` entry."""
        return {
            "role": self.role,
            "profile": self.profile,
            "key": self.key,
            "format": self.format,
            "content_type": CONTENT_TYPES.get(self.format, "application/octet-stream"),
            "bytes": self.bytes,
            "sha256": self.sha256,
            "duration_seconds": self.probe.duration_seconds,
            "sample_rate": self.probe.sample_rate,
            "channels": self.probe.channels,
            "bitrate": self.probe.bitrate,
            "codec": self.probe.codec,
            "tags": dict(self.probe.tags),
            "probe_error": self.probe.error,
        }


@dataclass(frozen=True)
class Protection:
    """S3 Object Lock settings applied to a recording's objects."""

    mode: str | None = None  # GOVERNANCE | COMPLIANCE
    retain_until: datetime | None = None
    legal_hold: bool = False
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "object_lock_mode": self.mode if self.retain_until else None,
            "retain_until": iso_z(self.retain_until),
            "legal_hold": self.legal_hold,
            "note": self.note,
        }


def protection_for(
    started_at: datetime | None, mode: str | None, retain_days: int | None, legal_hold: bool, now: datetime
) -> Protection | None:
    """Retention counted from the call's start. Where that date has passed already, the
    objects are stored without retention, and the note says so."""
    if not mode and not legal_hold:
        return None
    if not mode or not retain_days or started_at is None:
        return Protection(legal_hold=legal_hold)
    until = started_at + timedelta(days=retain_days)
    if until <= now:
        return Protection(
            mode, None, legal_hold, f"retain-until {iso_z(until)} had passed: stored without retention"
        )
    return Protection(mode, until, legal_hold)


# The stage of an Outcome that is the catalog's own answer (already archived, or found
# unavailable on an earlier run): counted and reported, nothing new to remember, not news.
KNOWN = "catalog"


@dataclass(frozen=True)
class Outcome:
    """What happened to one recording in one run."""

    recording_id: str
    status: Status
    stage: str | None = None
    error: str | None = None
    bytes_downloaded: int = 0
    bytes_written: int = 0
    keys: tuple[str, ...] = ()
    sha256: str | None = None
    problems: tuple[tuple[str, str], ...] = ()  # (stage, error): failed renditions of an archived recording
    # The destination failed (full, read-only, unreachable), not the recording: its attempt
    # is not counted, and consecutive ones stop the run.
    destination_down: bool = False
    # False when the catalog could not be told: then its window is not finished this run.
    remembered: bool = True
    # False when the attempt does not count against the recording's max_failures (a run
    # stopping cut it short).
    counted: bool = True
    # When the recording started (from its listing): the catalog keeps it, so the driver can
    # remember an Outcome a worker sent back without the Recording.
    started_at: datetime | None = None

    @property
    def sidecar_key(self) -> str | None:
        """The key of the recording's sidecar, when it is archived (written last: the last key)."""
        return self.keys[-1] if self.keys else None


# --- keys -------------------------------------------------------------------------------------

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def check_key_part(name: str, value: str | None) -> str:
    """Return ``value`` if it is safe as part of a storage key, else raise UnsafeKeyError.

    Only ``[A-Za-z0-9._-]``, no ``..``, and no leading ``.``: names beginning with a dot are
    the destination's own (staging, temp files), never a recording's."""
    if not value or not _SAFE.match(value) or ".." in value or value.startswith("."):
        raise UnsafeKeyError(
            f"unsafe {name} {value!r}: only [A-Za-z0-9._-], no '..' and no leading '.' allowed"
        )
    return value


def check_key(name: str, key: object) -> str:
    """Return ``key`` if it is safe as a whole storage key read back from somewhere we do not
    control (a sidecar, a listing), else raise UnsafeKeyError.

    The rule is the one provider values obey: relative, every ``/``-separated segment a safe
    key part (``check_key_part``), no empty segment, and none starting with ``.`` (so no
    ``..``, no hidden file, nothing that looks like one of our temporaries)."""
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError(f"unsafe {name} {key!r}: not a non-empty string")
    if key.startswith("/"):
        raise UnsafeKeyError(f"unsafe {name} {key!r}: absolute")
    for segment in key.split("/"):
        check_key_part(name, segment)
    return key


# Keys whose first segment begins with "_" are the destination's own records (``_custody/``,
# the custody log), never a recording's: the walks of sidecars pass them over.
RESERVED = "_"


def check_not_reserved(name: str, key: str) -> str:
    """Return ``key`` unless its first segment begins with ``_`` (UnsafeKeyError)."""
    if key.startswith(RESERVED):
        raise UnsafeKeyError(
            f"unsafe {name} {key!r}: names beginning with '_' at the destination's root are "
            "the archiver's own (_custody/)"
        )
    return key


def validate_layout(layout: str) -> str:
    """Check a ``--layout`` template names only known fields and ends in ``{recording_id}.{ext}``."""
    names = set()
    try:
        for _, fname, _, _ in string.Formatter().parse(layout):
            if fname is not None:
                names.add(fname)
    except ValueError as exc:
        raise ConfigError(f"bad layout {layout!r}: {exc}") from None
    unknown = names - LAYOUT_FIELDS
    if unknown:
        raise ConfigError(
            f"bad layout {layout!r}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"use {', '.join(sorted(LAYOUT_FIELDS))}"
        )
    if not layout.endswith("{recording_id}.{ext}") or layout.startswith("/"):
        raise ConfigError(f"bad layout {layout!r}: it must be relative and end with {{recording_id}}.{{ext}}")
    return layout


def build_key(layout: str, rec: Recording, ext: str) -> str:
    """The key of one of ``rec``'s files. ``ext`` is ``wav``, ``mp3-mono-32k.mp3``, ``json``...

    Every value taken from provider data is checked, then every segment of the result, so no
    provider value can write outside the destination.
    """
    if rec.started_at is None:
        raise UnsafeKeyError(f"recording {rec.recording_id!r} has no start time to file it under")
    values = {
        "provider": check_key_part("provider", rec.provider),
        "account": check_key_part("account", rec.account),
        "recording_id": check_key_part("recording id", rec.recording_id),
        "call_id": check_key_part("call id", rec.call_id) if "{call_id" in layout else "",
        "started": rec.started_at,
        "ext": ext,
    }
    return check_not_reserved("key", check_key("key", layout.format(**values)))


def scope_prefix(layout: str, provider: str, account: str) -> str:
    """The literal key prefix every recording of this provider account shares under
    ``layout`` (``catapult/u-1/`` for the default); empty when the layout does not start with
    the provider and account."""
    prefix = ""
    for literal, fname, _, _ in string.Formatter().parse(layout):
        prefix += literal
        if fname == "provider":
            prefix += provider
        elif fname == "account":
            prefix += account
        else:
            break
    if "{provider}" not in layout or "{account}" not in layout:
        return ""
    return prefix[: prefix.rfind("/") + 1]


def rendition_ext(profile: str, ext: str) -> str:
    """``{recording_id}.{profile}.{ext}`` as the spec names renditions."""
    return f"{check_key_part('profile', profile)}.{ext}"


# --- sidecar ----------------------------------------------------------------------------------


def sanitize_url(url: str | None) -> str | None:
    """Drop user info, query and fragment: a presigned query or ``user:pass@`` is a credential."""
    if not url:
        return url
    parts = urlsplit(url)
    # The netloc after any user info, verbatim ([::1]:8080 stays bracketed, case kept).
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


# Query parameters whose values are secrets (signatures, session tokens) or name the key that
# signed a URL (X-Amz-Credential, AWSAccessKeyId: identifiers, not secrets, but they tell an
# attacker which key to go after and secret scanners rightly flag them). Matched without case.
# Expiry and date parameters stay: they say when the link was valid, and give nothing away.
SECRET_QUERY_PARAMS = frozenset(
    {
        "x-amz-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "awsaccesskeyid",
        "signature",
        "token",
        "access_token",
        "auth_token",
        "password",
        "secret",
        "api_key",
        "apikey",
        "sig",
        "x-goog-signature",
        "x-goog-credential",
        "key-pair-id",
    }
)
REDACTED = "REDACTED"


def redact_url(value: str) -> str:
    """``value`` with user info removed and secret query values replaced by ``REDACTED``,
    everything else exactly as it was; a string that is not a URL is returned unchanged."""
    try:
        parts = urlsplit(value)
    except ValueError:  # an unparseable "URL" (a bad IPv6 literal) is no URL of ours
        return value
    if not (parts.scheme and parts.netloc) and not value.startswith("/"):
        return value
    netloc = parts.netloc.rpartition("@")[2]
    pieces = parts.query.split("&") if parts.query else []
    for i, piece in enumerate(pieces):
        name, eq, _ = piece.partition("=")
        if eq and unquote_plus(name).lower() in SECRET_QUERY_PARAMS:
            pieces[i] = f"{name}={REDACTED}"
    if netloc == parts.netloc and pieces == (parts.query.split("&") if parts.query else []):
        return value  # nothing to hide: keep the provider's spelling byte for byte
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pieces), parts.fragment))


def redact_urls(value: Any) -> Any:
    """A copy of a JSON value with ``redact_url`` applied to every string in it, at any depth
    (the provider's record is kept, its credentials are not). Iterative: a record nested as
    deep as the JSON parser allows must not hit the recursion limit here."""

    def copy(v: Any) -> Any:
        if isinstance(v, str):
            return redact_url(v)
        if isinstance(v, Mapping):
            out: dict[Any, Any] = {}
            todo.append((v.items(), out))
            return out
        if isinstance(v, list | tuple):
            items: list[Any] = []
            todo.append((enumerate(v), items))
            return items
        return v

    todo: list[tuple[Any, Any]] = []
    root = copy(value)
    while todo:
        pairs, target = todo.pop()
        for k, v in pairs:
            if isinstance(target, list):
                target.append(copy(v))
            else:
                target[k] = copy(v)
    return root


def recording_json(rec: Recording) -> dict[str, Any]:
    """The sidecar's ``recording`` object."""
    return {
        "provider": rec.provider,
        "account": rec.account,
        "recording_id": rec.recording_id,
        "call_id": rec.call_id,
        "conference_name": rec.conference_name,
        "from_number": rec.from_number,
        "to_number": rec.to_number,
        "direction": rec.direction,
        "started_at": iso_z(rec.started_at),
        "ended_at": iso_z(rec.ended_at),
        "provider_duration_seconds": rec.duration_seconds,
        "state": rec.provider_state,
    }


def build_sidecar(
    rec: Recording,
    files: Sequence[StoredFile],
    *,
    media_url: str | None,
    fetched_at: datetime,
    archived_at: datetime,
    version: str,
    protection: Protection | None = None,
) -> dict[str, Any]:
    """The ``archiver.sidecar/1`` document for one recording."""
    doc = {
        "schema": SIDECAR_SCHEMA,
        "recording": recording_json(rec),
        "files": [f.to_json() for f in files],
        "source": {"media_url": sanitize_url(media_url), "fetched_at": iso_z(fetched_at)},
        "provider_record": redact_urls(rec.raw),
        "archived_at": iso_z(archived_at),
        "archiver_version": version,
    }
    if protection is not None:
        doc["protection"] = protection.to_json()
    return doc


def render_sidecar(doc: Mapping[str, Any]) -> bytes:
    """UTF-8, pretty-printed, keys sorted, newline-terminated."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
