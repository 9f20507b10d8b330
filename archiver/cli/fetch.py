"""``archiver fetch``: archive named recordings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

from archiver.cli.archive import Job, archive, retry_remembered
from archiver.cli.options import archive_options, exit_codes
from archiver.config import Settings
from archiver.errors import ConfigError, UnsafeKeyError
from archiver.models import Outcome, Recording, check_key_part
from archiver.pipeline import Deps


@click.command()
@click.argument("recording_ids", nargs=-1, required=True)
@archive_options
@click.pass_context
@exit_codes
def fetch(ctx: click.Context, recording_ids: tuple[str, ...], **opts: Any) -> None:
    """Archive the named recordings (the provider's get-one endpoint).

    \b
    Example:
      archiver fetch --provider catapult rec-123 rec-456 --dest ./archive
    """
    for rid in recording_ids:
        try:
            check_key_part("recording id", rid)
        except UnsafeKeyError as exc:
            raise ConfigError(f"{exc}; nothing was done") from None

    def make_job(deps: Deps, settings: Settings) -> Job:
        items: Iterator[Recording | Outcome] = retry_remembered(deps, recording_ids)
        return Job(items=items)

    archive(ctx, "fetch", opts, make_job)
