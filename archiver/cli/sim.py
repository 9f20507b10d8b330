"""``archiver sim``: run the provider simulator on loopback."""

from __future__ import annotations

import threading

import click

from archiver.sim import Simulator
from archiver.sim.faults import __doc__ as FAULTS_DOC


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
) -> None:
    """Serve simulated Catapult v1 and Plivo APIs (and media) until interrupted.

    Recordings span 2024-01-01 to 2024-03-01. Prints `export` lines with the variables a
    client needs; the credentials are the simulator's own, not real ones.

    \b
    Example:
      archiver sim --recordings 20 > sim.env &  . ./sim.env
      archiver backfill --provider plivo --since 2024-01-01 --until 2024-03-01 --dest ./demo
    """
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
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    server.start()
    for key, value in server.env().items():
        click.echo(f"export {key}={value}")
    click.echo(f"# simulator ready: API {server.api_url}, Plivo media {server.media_url}", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# Keep the fault table's own line breaks in --help (click rewraps paragraphs otherwise).
sim.help = (sim.help or "") + "\n\n" + "\n\n".join("\b\n" + p for p in (FAULTS_DOC or "").split("\n\n"))
