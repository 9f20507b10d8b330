"""Choosing archived recordings by their sidecars (``export``, ``transcode``, ``verify``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from archiver.errors import StorageError
from archiver.models import SIDECAR_SCHEMA
from archiver.storage.base import Storage
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
        if self.number and self.number not in (rec.get("from_number"), rec.get("to_number")):
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


@dataclass(frozen=True)
class Archived:
    """One archived recording as its sidecar describes it."""

    key: str
    doc: dict[str, Any]

    @property
    def recording_id(self) -> str:
        return str(self.doc["recording"]["recording_id"])


def read_sidecar(storage: Storage, key: str) -> dict[str, Any] | None:
    """The sidecar at ``key``, or None when the JSON there is not one of ours."""
    with storage.open_read(key) as fh:
        doc = json.loads(fh.read())
    if isinstance(doc, dict) and doc.get("schema") == SIDECAR_SCHEMA:
        return doc
    return None


def archived(storage: Storage, selection: Selection) -> Iterator[Archived]:
    """Every selected recording of ``storage``, read from its sidecar (the truth)."""
    for key in storage.list_keys():
        if not key.endswith(".json"):
            continue
        try:
            doc = read_sidecar(storage, key)
        except (StorageError, ValueError) as exc:
            log.error("unreadable sidecar %s: %s", key, exc)
            continue
        if doc is not None and selection.matches(doc):
            yield Archived(key, doc)
