"""``archiver config``: the configuration file (``example``, ``path``), the effective settings
(``show``) and every key's environment variable (``env``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click

from archiver.catalog import default_path
from archiver.cli.options import dest_option, exit_codes, json_option
from archiver.cli.output import echo
from archiver.cli.outputs import JsonAwareGroup, print_json, take_stdout_for_json
from archiver.config import (
    SCHEMA,
    SECRET_KEYS,
    ConfigFile,
    env_table,
    environ,
    example_config,
    find_config,
    resolve,
    unknown_variables,
)
from archiver.errors import ExitCode
from archiver.profiles import BUILTIN

MASK = "***"


@click.group("config", cls=JsonAwareGroup)
def config() -> None:
    """The configuration file and the effective settings.

    Without --config or ARCHIVER_CONFIG, the file read is the first that exists of
    $XDG_CONFIG_HOME/archiver/config.toml (~/.config/...) and /etc/archiver/config.toml.

    \b
    Example:
      mkdir -p ~/.config/archiver && archiver config example > ~/.config/archiver/config.toml
      archiver config show
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


def _chosen(ctx: click.Context) -> ConfigFile:
    return find_config(ctx.obj.config, environ())


def _how(found: ConfigFile) -> str:
    if found.chosen_by in ("--config", "ARCHIVER_CONFIG"):
        return f"named by {found.chosen_by}"
    return "found; looked at " + ", ".join(found.searched)


@config.command("path")
@click.pass_context
def path(ctx: click.Context) -> None:
    """Print the path of the config file commands read (exit 1 when there is none).

    --config, else $ARCHIVER_CONFIG, else the first that exists of
    $XDG_CONFIG_HOME/archiver/config.toml and /etc/archiver/config.toml. How it was chosen
    goes to stderr.

    \b
    Example:
      "${EDITOR:-vi}" "$(archiver config path)"
    """
    found = _chosen(ctx)
    if found.path is None:
        echo(f"no config file: looked at --config, $ARCHIVER_CONFIG, {', '.join(found.searched)}", err=True)
        raise SystemExit(ExitCode.FAILED)
    echo(found.path)
    echo(f"({_how(found)})", err=True)


@config.command("show")
@dest_option
@click.option("--catalog", type=click.Path(dir_okay=False), help="Catalog database, as the commands take it.")
@json_option
@click.pass_context
@exit_codes
def show(ctx: click.Context, dest: str | None, catalog: str | None, as_json: bool) -> None:
    """Print the effective settings, each with where it came from (flag, env, file, default).

    Credentials are masked (***). The settings are validated as a command would: an invalid
    value exits 2 naming it. --dest and --catalog show what those flags would make of them.

    \b
    Example:
      archiver config show
      ARCHIVER_ARCHIVE_CONCURRENCY=4 archiver config show --json | jq .settings
    """
    take_stdout_for_json(as_json)
    env = environ()
    found = _chosen(ctx)
    # Validated as a command would: an invalid value exits 2 here too.
    _, merged, sources = resolve(found.path, env, {"archive.dest": dest, "archive.catalog": catalog})
    unknown = unknown_variables(env)
    settings: dict[str, dict[str, Any]] = {}
    for key in SCHEMA:
        value = merged[key]
        settings[key] = {
            "value": MASK if key in SECRET_KEYS and value else _without_userinfo(value),
            "source": sources[key].kind,
            "where": sources[key].where,
        }
    if merged["archive.catalog"] is None:  # the default is a path of this user's: say which
        settings["archive.catalog"] |= {
            "value": default_path(env),
            "where": "$XDG_STATE_HOME/archiver/catalog.db",
        }
    profiles = dict.fromkeys(BUILTIN, "default") | dict.fromkeys(merged["profiles"], "file")
    if as_json:
        doc = {
            "config_file": found.path,
            "config_file_chosen_by": found.chosen_by,
            "settings": settings,
            "profiles": profiles,
            "unknown_variables": unknown,
        }
        print_json("config show", doc)
    else:
        echo(f"# config file: {found.path} ({_how(found)})" if found.path else "# config file: none")
        width = max(map(len, SCHEMA))
        for key, entry in settings.items():
            shown = "(unset)" if entry["value"] is None else _shown(entry["value"])
            origin = entry["source"] + (f" {entry['where']}" if entry["where"] else "")
            echo(f"{key:<{width}}  {shown:<24}  {origin}")
        for name, origin in profiles.items():
            echo(f"{'profiles.' + name:<{width}}  {'':<24}  {origin}")
    for var in unknown:
        echo(f"warning: {var} is set but is no setting (see `archiver config env`)", err=True)


def _without_userinfo(value: Any) -> Any:
    """A URL's password (``https://user:pass@host``, ``tls://u:p@h:8786``) masked: credentials
    given inside a base URL or a scheduler address are secrets too."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def _shown(value: Any) -> str:
    if value == MASK:
        return MASK
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


@config.command("env")
def env() -> None:
    """Print every setting's environment variable (ARCHIVER_<SECTION>_<KEY>) as a table.

    The shorter names that came first (PLIVO_AUTH_ID, ARCHIVER_DEST, ...) are listed beside
    them; where both are set, ARCHIVER_<SECTION>_<KEY> wins.

    \b
    Example:
      archiver config env | grep S3
    """
    click.echo(env_table(), nl=False)
