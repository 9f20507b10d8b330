"""The ``archiver`` command: click only (parse, wire, print)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import click

from archiver.cli import _lean  # noqa: F401 - first: keeps httpx's own CLI out of start-up
from archiver.cli.about import version_option
from archiver.cli.options import accept_global_options
from archiver.cli.outputs import JsonAwareGroup
from archiver.cli.wiring import GlobalOptions

# Each command's module is imported when that command runs (or help lists it), not for every
# command: `archiver run` does not load export's, the simulator's or doctor's code.
COMMANDS = {
    "run": "archiver.cli.run:run",
    "backfill": "archiver.cli.backfill:backfill",
    "fetch": "archiver.cli.fetch:fetch",
    "forget": "archiver.cli.forget:forget",
    "export": "archiver.cli.export:export",
    "verify": "archiver.cli.verify:verify",
    "legal-hold": "archiver.cli.legal_hold:legal_hold",
    "custody": "archiver.cli.custody:custody",
    "transcode": "archiver.cli.transcode:transcode",
    "reindex": "archiver.cli.reindex:reindex",
    "doctor": "archiver.cli.doctor:doctor",
    "sim": "archiver.cli.sim:sim",
    "config": "archiver.cli.config_cmd:config",
    "completion": "archiver.cli.about:completion",
}


class LazyCommands(MutableMapping[str, click.Command]):
    """click's name -> command table, importing a command's module on first use."""

    def __init__(self, specs: dict[str, str]) -> None:
        self._specs = dict(specs)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, _, attr = self._specs[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            accept_global_options(command)
            for sub in getattr(command, "commands", {}).values():  # a group's commands too
                accept_global_options(sub)
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._specs[name] = ""
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._specs[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


@click.group(
    cls=JsonAwareGroup,
    commands=LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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
