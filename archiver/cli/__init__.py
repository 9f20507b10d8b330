"""The ``archiver`` command: click only (parse, wire, print)."""

from __future__ import annotations

import click

from archiver.cli.about import completion, version_option
from archiver.cli.backfill import backfill
from archiver.cli.config_cmd import config as config_group
from archiver.cli.doctor import doctor
from archiver.cli.export import export
from archiver.cli.fetch import fetch
from archiver.cli.forget import forget
from archiver.cli.legal_hold import legal_hold
from archiver.cli.options import accept_global_options
from archiver.cli.reindex import reindex
from archiver.cli.run import run
from archiver.cli.sim import sim
from archiver.cli.transcode import transcode
from archiver.cli.verify import verify
from archiver.cli.wiring import GlobalOptions


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@version_option
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="TOML config file (default: $ARCHIVER_CONFIG, else ~/.config/archiver/config.toml, else "
    "/etc/archiver/config.toml, if one exists: `archiver config path`).",
)
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the summary line.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or one JSON object per event.",
)
@click.pass_context
def main(ctx: click.Context, config: str | None, verbose: int, quiet: bool, log_format: str) -> None:
    """Archive call recordings from Bandwidth Catapult v1 and Plivo into a folder or S3.

    The global options may also follow the command (`archiver run ... -v --log-format json`);
    given in both places, the ones after the command win.

    \b
    Example:
      export PLIVO_AUTH_ID=MA... PLIVO_AUTH_TOKEN=...
      archiver backfill --provider plivo --since 2024-01-01 --until 2024-03-01 \\
          --dest s3://acme-calls/recordings
    """
    ctx.obj = GlobalOptions(config, verbose, quiet, log_format)


main.add_command(run)
main.add_command(backfill)
main.add_command(fetch)
main.add_command(forget)
main.add_command(export)
main.add_command(verify)
main.add_command(legal_hold)
main.add_command(transcode)
main.add_command(reindex)
main.add_command(doctor)
main.add_command(sim)
main.add_command(config_group)
main.add_command(completion)
for _command in main.commands.values():
    accept_global_options(_command)
    for _sub in getattr(_command, "commands", {}).values():  # a group's commands too
        accept_global_options(_sub)
