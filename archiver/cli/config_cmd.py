"""``archiver config``: the configuration file (``config example`` today; room for ``config
path`` and ``config show``)."""

from __future__ import annotations

import click

from archiver.config import example_config


@click.group("config")
def config() -> None:
    """The configuration file.

    \b
    Example:
      archiver config example > ~/.config/archiver.toml
      archiver --config ~/.config/archiver.toml run --provider plivo --dest ./archive
    """


@config.command("example")
def example() -> None:
    """Print a config file that documents every key with its built-in default.

    Every value set in it is the default, so a copy changes nothing until edited; keys with
    no default are commented out, with an example value.

    \b
    Example:
      archiver config example > archiver.toml && chmod 600 archiver.toml
    """
    click.echo(example_config(), nl=False)
