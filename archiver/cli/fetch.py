"""``archiver fetch``: archive named recordings."""

from __future__ import annotations

from typing import Any

import click

from archiver import api
from archiver.cli.archive import archive
from archiver.cli.options import archive_options, exit_codes
from archiver.errors import ConfigError, UnsafeKeyError
from archiver.models import check_key_part


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

    archive(
        ctx,
        opts,
        lambda settings, options, hooks: api.fetch(
            settings, opts["provider"], recording_ids, options=options, hooks=hooks
        ),
        total=len(dict.fromkeys(recording_ids)),
    )
