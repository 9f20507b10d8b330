"""``archiver reindex``: rebuild the catalog from the sidecars in a destination."""

from __future__ import annotations

import logging
import os

import click

from archiver.api import must_exist
from archiver.catalog import Catalog, Scope
from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, json_option
from archiver.cli.output import echo
from archiver.cli.outputs import print_json, take_stdout_for_json
from archiver.errors import CatalogDamaged, ConfigError, ExitCode, SidecarError
from archiver.locking import DestLock
from archiver.sidecars import Selection, archived
from archiver.timeutil import utcnow

log = logging.getLogger("archiver.reindex")


@click.command()
@dest_option
@click.option("--catalog", type=click.Path(dir_okay=False), help="Catalog database to rebuild.")
@json_option
@click.pass_context
@exit_codes
def reindex(ctx: click.Context, dest: str | None, catalog: str | None, as_json: bool) -> None:
    """Rebuild the catalog's record of a destination from its sidecars (the truth).

    A damaged catalog is moved aside as CATALOG.corrupt-<UTC time> (kept for inspection) and
    a new one is built. Sidecars that cannot be used are counted as unreadable or unsafe, and
    the command exits 1.

    \b
    Example:
      archiver reindex --dest s3://acme-calls/recordings
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    take_stdout_for_json(as_json)
    storage = wiring.build_storage(settings)
    try:
        must_exist(storage)  # a typo'd --dest: an error, not the record of an empty archive
    except ConfigError:
        storage.close()
        raise
    path = wiring.catalog_path(settings)
    aside: str | None = None
    try:
        db = wiring.open_catalog(settings)
    except CatalogDamaged as exc:
        aside = move_aside(path)
        # Nothing is salvaged from the damaged file: a finished window or a watermark read
        # from damaged pages could make a later run skip recordings never archived.
        echo(
            f"warning: {exc}\nmoved the damaged catalog to {aside}; building a new one. It starts "
            "without the runs, finished windows and watermarks of the old one: the next `archiver "
            "run` needs --since, a backfill lists its windows again (skipping what is archived), and "
            "other destinations the catalog knew need their own reindex",
            err=True,
        )
        db = Catalog(path)
    found = 0
    problems: list[SidecarError] = []

    def unusable(problem: SidecarError) -> None:
        problems.append(problem)
        log.error("%s", problem)

    try:
        # Alone on this destination: a run remembering rows while they are rebuilt would
        # have some forgotten (or a rebuilt one overwritten by what it then gives up on).
        with DestLock(path, storage.url, exclusive=True):
            storage.check()
            db.forget_dest(storage.url)
            for item in archived(storage, Selection(), on_problem=unusable):
                rec = item.doc["recording"]
                original = next((f for f in item.doc["files"] if f["role"] == "original"), None)
                db.mark_archived(
                    Scope(storage.url, rec["provider"], rec["account"]),
                    rec["recording_id"],
                    sidecar_key=item.key,
                    sha256=original["sha256"] if original else None,
                    size=original["bytes"] if original else None,
                    started_at=rec.get("started_at") if isinstance(rec.get("started_at"), str) else None,
                )
                found += 1
    finally:
        storage.close()
        db.close()
    unsafe = sum(1 for p in problems if p.kind == "unsafe")
    echo(f"reindexed={found} unreadable={len(problems) - unsafe} unsafe={unsafe} dest={storage.url}")
    code = ExitCode.FAILED if problems else ExitCode.OK
    if as_json:
        print_json(
            "reindex",
            {
                "dest": storage.url,
                "catalog": path,
                "damaged_catalog_moved_to": aside,
                "counts": {"reindexed": found, "unreadable": len(problems) - unsafe, "unsafe": unsafe},
                "problems": [{"kind": p.kind, "error": str(p)} for p in problems],
                "exit_code": int(code),
            },
        )
    raise SystemExit(code)


def move_aside(path: str) -> str:
    """Rename a damaged catalog (with its ``-wal`` and ``-shm``) to ``<name>.corrupt-<UTC
    time>``, never over an earlier one; returns the new name."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    aside, n = f"{path}.corrupt-{stamp}", 1
    while os.path.exists(aside):
        n += 1
        aside = f"{path}.corrupt-{stamp}-{n}"
    for suffix in ("-wal", "-shm", ""):  # the main file last: a crash midway leaves it in place
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return aside
