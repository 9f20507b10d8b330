"""``archiver custody verify|show``: the destination's tamper-evident custody log."""

from __future__ import annotations

import os
import sys

import click

from archiver.api import must_exist
from archiver.catalog import Catalog
from archiver.cli import wiring
from archiver.cli.options import accept_global_options, dest_option, exit_codes, json_option
from archiver.cli.output import echo
from archiver.cli.outputs import JsonAwareGroup, print_json, take_stdout_for_json
from archiver.compliance import custody as chain
from archiver.config import Settings
from archiver.errors import ConfigError, ExitCode


@click.group(cls=JsonAwareGroup)
def custody() -> None:
    """The custody log: every archive run, export, deletion at the provider, legal hold
    change, repair and forget, as a hash chain kept in the destination (`_custody/`).

    \b
    Example:
      archiver custody verify --dest s3://acme-calls/recordings
      archiver custody show --dest ./archive
    """


catalog_option = click.option(
    "--catalog",
    type=click.Path(dir_okay=False),
    help="Catalog that remembers the latest event it saw (default as for run; never created here).",
)


@custody.command("verify")
@dest_option
@click.option(
    "--file",
    "log_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Check an export's CUSTODY-LOG.jsonl instead of a destination.",
)
@catalog_option
@json_option
@click.pass_context
@exit_codes
def verify_cmd(
    ctx: click.Context, dest: str | None, log_file: str | None, catalog: str | None, as_json: bool
) -> None:
    """Walk the chain and name the first broken or missing link.

    Every event must sit under its own number, none may be missing, each must hold the
    SHA-256 of the one before, and the latest event this catalog saw must still be there
    unchanged (so deleting or rewriting the end of the chain shows too). Exits 1 on any
    problem. With --file, checks an export's CUSTODY-LOG.jsonl (no catalog involved).

    \b
    Example:
      archiver custody verify --dest s3://acme-calls/recordings
      archiver custody verify --file ./audit-2024-01/CUSTODY-LOG.jsonl
    """
    settings = wiring.load(ctx, {"archive.dest": dest, "archive.catalog": catalog})
    take_stdout_for_json(as_json)
    if log_file:
        with open(log_file, "rb") as fh:
            check = chain.check_chain(chain.log_lines(fh.read()))
        where = log_file
    else:
        storage = wiring.build_storage(settings)
        where = storage.url
        try:
            must_exist(storage)  # reading only: a read-only destination verifies
            db = _catalog(settings)
            try:
                anchor = db.custody_anchor(storage.url) if db else None
                check = chain.check_chain(chain.stored_events(storage), anchor)
                last = check.last
                if db is not None and check.ok and last is not None:
                    db.set_custody_anchor(storage.url, last.seq, last.sha256)
            finally:
                if db is not None:
                    db.close()
        finally:
            storage.close()
    for problem in check.problems:
        echo(f"broken: {problem}", err=True)
    last = check.last
    head = f"event {last.seq}, SHA-256 {last.sha256}" if last else "no events"
    if as_json:
        print_json(
            "custody verify",
            {
                "where": where,
                "intact": check.ok,
                "events": len(check.events),
                "head": {"seq": last.seq, "sha256": last.sha256} if last else None,
                "problems": [str(p) for p in check.problems],
                "exit_code": int(ExitCode.OK if check.ok else ExitCode.FAILED),
            },
        )
    if check.ok:
        echo(f"custody log of {where}: {len(check.events)} event(s), intact (head: {head})")
        raise SystemExit(ExitCode.OK)
    echo(
        f"custody log of {where}: BROKEN, first at {check.problems[0]} "
        f"({len(check.problems)} problem(s), {len(check.events)} event(s) read)"
    )
    raise SystemExit(ExitCode.FAILED)


@custody.command("show")
@dest_option
@click.option("--json", "as_json", is_flag=True, help="Print the events as stored (JSON Lines).")
@click.pass_context
@exit_codes
def show_cmd(ctx: click.Context, dest: str | None, as_json: bool) -> None:
    """Print the chain, one event a line: number, time, action, who, and its details.

    \b
    Example:
      archiver custody show --dest ./archive
      archiver custody show --dest s3://acme-calls/recordings --json > custody.jsonl
    """
    settings = wiring.load(ctx, {"archive.dest": dest})
    storage = wiring.build_storage(settings)
    try:
        must_exist(storage)
        count = 0
        for seq, key, body in chain.stored_events(storage):
            count += 1
            if as_json:
                sys.stdout.buffer.write(body)
                sys.stdout.buffer.flush()
            else:
                echo(chain.describe(chain.Event(seq or 0, key, body)))
    finally:
        storage.close()
    if not count:
        echo(f"custody log of {storage.url}: no events", err=True)


def _catalog(settings: Settings) -> Catalog | None:
    """The catalog when there is one (an auditor's machine may have none: not made here)."""
    path = wiring.catalog_path(settings)
    if path != ":memory:" and not os.path.exists(path):
        return None
    try:
        return wiring.open_catalog(settings)
    except ConfigError as exc:
        echo(
            f"note: the catalog cannot be used, so the chain's end is not checked against it: {exc}", err=True
        )
        return None


for _sub in custody.commands.values():
    accept_global_options(_sub)
