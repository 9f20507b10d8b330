"""``archiver forget``: drop remembered recording ids from the catalog."""

from __future__ import annotations

import os

import click

from archiver.api import must_exist
from archiver.catalog import Catalog, Scope
from archiver.cli import wiring
from archiver.cli.options import dest_option, exit_codes, json_option
from archiver.cli.output import echo
from archiver.cli.outputs import print_json, take_stdout_for_json
from archiver.compliance import custody
from archiver.config import Settings
from archiver.errors import ArchiverError, ExitCode
from archiver.locking import RunLock
from archiver.providers import make_client


@click.command()
@click.argument("recording_ids", nargs=-1, required=True)
@click.option("--provider", type=click.Choice(["catapult", "plivo"]), required=True, help="Whose recordings.")
@dest_option
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False),
    help="Catalog database (default $ARCHIVER_CATALOG, else $XDG_STATE_HOME/archiver/catalog.db).",
)
@click.option(
    "--archived",
    "archived",
    is_flag=True,
    help="Also forget archived recordings (their files stay; a later run finds the sidecar again).",
)
@json_option
@click.pass_context
@exit_codes
def forget(
    ctx: click.Context,
    recording_ids: tuple[str, ...],
    provider: str,
    dest: str | None,
    catalog: str | None,
    archived: bool,
    as_json: bool,
) -> None:
    """Make the catalog forget recording ids of one provider account + destination.

    For a typo'd `fetch` id, a recording given up after too many failures, or one found
    unavailable: later runs stop retrying or reporting it. The provider is not contacted (the
    account comes from its configured credentials); in the destination only its custody log
    changes (an event naming the ids forgotten).
    An archived recording is kept unless --archived is given: forgetting it gains nothing
    (its sidecar says it is archived) and usually means a wrong id. Exits 1 when an id was not
    forgotten (unknown, or archived without --archived).

    \b
    Example:
      archiver forget --provider catapult --dest ./archive rec-typo rec-gone
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    take_stdout_for_json(as_json)
    storage = wiring.build_storage(settings)
    try:
        with make_client() as client:  # builds the provider for its account; sends nothing
            account = wiring.build_provider(settings, provider, client).account
        scope = Scope(storage.url, provider, account)
    finally:
        storage.close()
    path = wiring.catalog_path(settings)
    where = f"{provider} account {account} into {scope.dest}"
    if not os.path.exists(path):  # nothing to forget: never create a catalog for that
        echo(*(f"unknown {rid}: no catalog at {path}" for rid in dict.fromkeys(recording_ids)), err=True)
        echo(f"forgot=0 kept=0 unknown={len(set(recording_ids))}")
        if as_json:
            unknown_ids = list(dict.fromkeys(recording_ids))
            print_json("forget", _doc(scope, [], [], unknown_ids, logged=True, code=ExitCode.FAILED))
        raise SystemExit(ExitCode.FAILED)
    db: Catalog = wiring.open_catalog(settings)
    try:
        # Not under a running run's feet: it could remember an id again right after.
        with RunLock(db.path, scope.dest, scope.provider, scope.account):
            before = {rid: db.get(scope, rid) for rid in dict.fromkeys(recording_ids)}
            gone = {k.recording_id: k for k in db.forget(scope, list(before), archived=archived)}
    finally:
        db.close()
    logged = _log_forget(settings, scope, sorted(gone), archived) if gone else True
    forgot: list[dict[str, object]] = []
    kept: list[str] = []
    unknown: list[str] = []
    for rid, known in before.items():
        if rid in gone:
            k = gone[rid]
            detail = f", last: {k.last_error}" if k.last_error else ""
            echo(f"forgot {rid} ({k.state}, {k.attempts} failed attempt(s){detail})")
            forgot.append(
                {"recording_id": rid, "state": k.state, "attempts": k.attempts, "last_error": k.last_error}
            )
        elif known is None:
            unknown.append(rid)
            echo(f"unknown {rid}: the catalog remembers nothing of it for {where}", err=True)
        else:
            kept.append(rid)
            echo(f"kept {rid}: archived (--archived forgets the catalog's memory of it)", err=True)
    echo(f"forgot={len(gone)} kept={len(kept)} unknown={len(unknown)}")
    code = ExitCode.FAILED if kept or unknown or not logged else ExitCode.OK
    if as_json:
        print_json("forget", _doc(scope, forgot, kept, unknown, logged=logged, code=code))
    raise SystemExit(code)


def _doc(
    scope: Scope,
    forgot: list[dict[str, object]],
    kept: list[str],
    unknown: list[str],
    *,
    logged: bool,
    code: int,
) -> dict[str, object]:
    """forget's --json document."""
    return {
        "dest": scope.dest,
        "provider": scope.provider,
        "account": scope.account,
        "forgot": forgot,
        "kept": kept,
        "unknown": unknown,
        "counts": {"forgot": len(forgot), "kept": len(kept), "unknown": len(unknown)},
        "custody_logged": logged,
        "exit_code": int(code),
    }


def _log_forget(settings: Settings, scope: Scope, ids: list[str], archived: bool) -> bool:
    """The custody event of what was forgotten; False (said on stderr) when it was not logged."""
    storage = wiring.build_storage(settings)
    try:
        must_exist(storage)
        details = {
            "provider": scope.provider,
            "account": scope.account,
            "archived": archived,
            "recording_ids": ids,
        }
        custody.log_event(storage, settings, "forget", details)
        return True
    except ArchiverError as exc:
        echo(f"error: forgotten, but not added to the custody log: {exc}", err=True)
        return False
    finally:
        storage.close()
