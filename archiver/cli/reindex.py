"""``archiver reindex``: rebuild the catalog from the sidecars in a destination."""

from __future__ import annotations

import json
import logging

import click

from archiver.catalog import Scope
from archiver.cli import wiring
from archiver.cli.options import exit_codes
from archiver.cli.output import echo
from archiver.errors import StorageError
from archiver.models import SIDECAR_SCHEMA

log = logging.getLogger("archiver.reindex")


@click.command()
@click.option("--dest", help="Destination to read: a folder, file:///path or s3://bucket/prefix.")
@click.option("--catalog", type=click.Path(dir_okay=False), help="Catalog database to rebuild.")
@click.pass_context
@exit_codes
def reindex(ctx: click.Context, dest: str | None, catalog: str | None) -> None:
    """Rebuild the catalog's record of a destination from its sidecars (the truth).

    \b
    Example:
      archiver reindex --dest s3://acme-calls/recordings
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    storage = wiring.build_storage(settings)
    db = wiring.open_catalog(settings)
    found = bad = 0
    try:
        storage.check()
        db.forget_dest(storage.url)
        for key in storage.list_keys():
            if not key.endswith(".json"):
                continue
            try:
                with storage.open_read(key) as fh:
                    doc = json.loads(fh.read())
                if not isinstance(doc, dict) or doc.get("schema") != SIDECAR_SCHEMA:
                    continue  # not a sidecar of ours (a report, a manifest...)
                rec = doc["recording"]
                original = next((f for f in doc["files"] if f.get("role") == "original"), None)
                db.mark_archived(
                    Scope(storage.url, rec["provider"], rec["account"]),
                    rec["recording_id"],
                    sidecar_key=key,
                    sha256=original["sha256"] if original else None,
                    size=original["bytes"] if original else None,
                    started_at=rec.get("started_at"),
                )
                found += 1
            except (StorageError, ValueError, KeyError, TypeError) as exc:
                bad += 1
                log.error("unreadable sidecar %s: %s", key, exc)
    finally:
        storage.close()
        db.close()
    echo(f"reindexed={found} unreadable={bad} dest={storage.url}")
    raise SystemExit(1 if bad else 0)
