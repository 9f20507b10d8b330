"""``archiver sim``: run the provider simulator on loopback."""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import threading
from types import FrameType

import click

from archiver.cli.outputs import check_output_path, write_atomic
from archiver.errors import ConfigError
from archiver.sim import Simulator
from archiver.sim.faults import __doc__ as FAULTS_DOC
from archiver.timeutil import parse_when, utcnow


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it loopback).")
@click.option("--port", type=int, default=0, show_default=True, help="API port (0: any free port).")
@click.option("--media-port", type=int, default=0, show_default=True, help="Plivo media port (0: any).")
@click.option(
    "--recordings", type=click.IntRange(0), default=40, show_default=True, help="Recordings per provider."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated data.")
@click.option("--faults", default="", help="Faults to inject, e.g. '503:list*2,html:media*1' (see below).")
@click.option(
    "--max-seconds",
    type=click.IntRange(4),
    default=40,
    show_default=True,
    help="Longest recording (they last 3 s to this; 3600 makes 57.6 MB WAVs).",
)
@click.option(
    "--stall-seconds",
    type=float,
    default=30.0,
    show_default=True,
    help="How long a 'stall' fault holds a response.",
)
@click.option(
    "--plivo-paging",
    type=click.Choice(["offset", "cursor", "hybrid"]),
    default="offset",
    show_default=True,
    help="How Plivo's listing pages: legacy offsets, opaque cursors, or cursors that still apply an offset.",
)
@click.option(
    "--start",
    default="2024-01-01",
    show_default=True,
    help="When the recordings begin: a date, or relative (-7d: a week ago, to try `archiver run "
    "--since -7d`).",
)
@click.option(
    "--days", type=click.IntRange(1), default=60, show_default=True, help="Over how many days they spread."
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False),
    help="Write the `export` lines to this file (atomically, once serving; removed on exit) "
    "instead of stdout.",
)
def sim(
    host: str,
    port: int,
    media_port: int,
    recordings: int,
    seed: int,
    faults: str,
    max_seconds: int,
    stall_seconds: float,
    plivo_paging: str,
    start: str,
    days: int,
    env_file: str | None,
) -> None:
    """Serve simulated Catapult v1 and Plivo APIs (and media) until interrupted.

    Recordings span 2024-01-01 to 2024-03-01 (--start, --days). Prints `export` lines with the variables a
    client needs (or writes them to --env-file once it serves, so the file's existence means
    "ready"); the credentials are the simulator's own, not real ones. Ctrl-C or SIGTERM stops
    it.

    \b
    Example:
      rm -f sim.env; archiver sim --recordings 20 --env-file sim.env &
      until [ -f sim.env ]; do sleep 0.1; done; . ./sim.env
      archiver backfill --provider plivo --since 2024-01-01 --until 2024-03-01 \\
          --dest ./demo
    """
    try:
        check_output_path("--env-file", env_file)
        begin = parse_when(start, now=utcnow()).replace(microsecond=0)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        server = Simulator(
            host=host,
            port=port,
            media_port=media_port,
            recordings=recordings,
            seed=seed,
            faults=faults,
            stall_seconds=stall_seconds,
            seconds=(3, max_seconds),
            plivo_paging=plivo_paging,
            start=begin,
            days=days,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C: clean up
    server.start()
    try:
        lines = "".join(f"export {key}={value}\n" for key, value in server.env().items())
        if env_file:
            # Renamed into place only now, serving: a reader never sees half a file or a
            # file naming ports not yet open.
            write_atomic(env_file, lines, 0o600)
        else:
            click.echo(lines, nl=False)
        click.echo(f"# simulator ready: API {server.api_url}, Plivo media {server.media_url}", err=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        if env_file:  # its URLs die with us
            with contextlib.suppress(OSError):
                os.unlink(env_file)
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# Keep the fault table's own line breaks in --help (click rewraps paragraphs otherwise).
sim.help = (
    inspect.cleandoc(sim.help or "")
    + "\n\n"
    + "\n\n".join("\b\n" + p for p in (FAULTS_DOC or "").split("\n\n"))
)
