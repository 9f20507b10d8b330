"""``archiver --version`` (and ``-V``): what a bug report needs, and ``archiver completion``.

Versions come from the installed distributions' metadata (nothing heavy is imported), the
ffmpeg version from the binary a transcode would run."""

from __future__ import annotations

import platform
import subprocess
import sys

import click

from archiver import __version__
from archiver.errors import ConfigError

DISTRIBUTION = "call-recording-archiver"
LIBRARIES = ("httpx", "boto3", "mutagen", "distributed")


def _installed(name: str) -> str:
    from importlib import metadata  # only for --version: it costs every command ~20 ms

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def ffmpeg_version(ffmpeg: str) -> str:
    """``ffmpeg -version``'s version word (``7.0.2-static``), or why there is none."""
    try:
        proc = subprocess.run(
            [ffmpeg, "-version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"not runnable ({exc.__class__.__name__})"
    words = (proc.stdout.splitlines() or [""])[0].split()
    if proc.returncode != 0 or len(words) < 3 or words[:2] != ["ffmpeg", "version"]:
        return "not runnable (no version line)"
    return words[2]


def configured_ffmpeg() -> str | None:
    """``[transcode] ffmpeg`` from the environment and the config file a command would read;
    a config that does not load leaves it to the default (``--version`` must always work)."""
    from archiver.config import environ, find_config, load_settings

    env = environ()
    try:
        return load_settings(find_config(None, env).path, env).transcode.ffmpeg
    except ConfigError:
        return None


def version_lines() -> list[str]:
    from archiver.media.transcode import find_ffmpeg

    ffmpeg = find_ffmpeg(configured_ffmpeg())
    return [
        f"archiver {__version__} ({DISTRIBUTION})",
        f"Python {platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        *(f"{name} {_installed(name)}" for name in LIBRARIES),
        f"ffmpeg {ffmpeg_version(ffmpeg)} ({ffmpeg})",
    ]


def print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:  # resilient: shell completion is parsing
        return
    for line in version_lines():
        click.echo(line)
    ctx.exit()


version_option = click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the versions of archiver, Python, its libraries and ffmpeg, and exit.",
)


SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Install it once; new shells then complete commands, options and choices with TAB.
    For this shell only: eval "$(archiver completion bash)" (zsh likewise).

    \b
    Example:
      archiver completion bash > ~/.local/share/bash-completion/completions/archiver
      archiver completion zsh > ~/.zfunc/_archiver   # fpath+=(~/.zfunc) before compinit
      archiver completion fish > ~/.config/fish/completions/archiver.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # every SHELLS entry is one of click's
    root = ctx.find_root().command
    click.echo(cls(root, {}, "archiver", "_ARCHIVER_COMPLETE").source())
