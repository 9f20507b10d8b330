"""Where settings come from: the config file's lookup order, each value's provenance, and the
environment variables generated from the schema (one per key, documented in one table)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archiver import config
from archiver.config import (
    ALIASES,
    SCHEMA,
    Source,
    env_name,
    env_table,
    find_config,
    load_settings,
    merge,
    unknown_variables,
)

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A user's and a system config file (neither written yet), and an env pointing at them."""
    system = tmp_path / "etc" / "archiver" / "config.toml"
    monkeypatch.setattr(config, "SYSTEM_CONFIG", str(system))
    return {"home": tmp_path / "home", "xdg": tmp_path / "xdg", "system": system}


def write(path: Path, text: str = "[archive]\nconcurrency = 3\n") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_lookup_order_flag_env_user_system_none(places: dict[str, Path]) -> None:
    env = {"HOME": str(places["home"]), "XDG_CONFIG_HOME": str(places["xdg"])}
    user = places["xdg"] / "archiver" / "config.toml"
    assert find_config(None, env).path is None
    assert find_config(None, env).searched == (str(user), str(places["system"]))
    write(places["system"])
    assert (find_config(None, env).path, find_config(None, env).chosen_by) == (
        str(places["system"]),
        "system",
    )
    write(user)
    assert (find_config(None, env).path, find_config(None, env).chosen_by) == (str(user), "XDG_CONFIG_HOME")
    env["ARCHIVER_CONFIG"] = "/named/by/env.toml"  # named: used whether or not it exists
    assert find_config(None, env).path == "/named/by/env.toml"
    assert find_config("/named/by/flag.toml", env).chosen_by == "--config"


def test_xdg_config_home_unset_or_relative_means_home_dot_config(places: dict[str, Path]) -> None:
    user = write(places["home"] / ".config" / "archiver" / "config.toml")
    for xdg in ({}, {"XDG_CONFIG_HOME": ""}, {"XDG_CONFIG_HOME": "relative/dir"}):
        assert find_config(None, {"HOME": str(places["home"]), **xdg}).path == user


def test_a_found_file_is_read_and_a_named_missing_one_is_an_error(places: dict[str, Path]) -> None:
    from archiver.errors import ConfigError

    write(places["system"], "[archive]\nconcurrency = 5\n")
    env = {"HOME": str(places["home"])}
    assert load_settings(find_config(None, env).path, env).archive.concurrency == 5
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(
            find_config(None, {**env, "ARCHIVER_CONFIG": str(places["home"] / "typo.toml")}).path, env
        )


def test_each_value_says_where_it_came_from(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[archive]\nconcurrency = 3\nlayout = "{recording_id}.{ext}"\n')
    env = {"ARCHIVER_ARCHIVE_CONCURRENCY": "4", "PLIVO_AUTH_ID": "MA1"}
    merged, sources = merge(path, env, {"archive.dest": "/flag", "archive.catalog": None})
    assert sources["archive.dest"] == Source("flag") and merged["archive.dest"] == "/flag"
    assert sources["archive.concurrency"] == Source("env", "ARCHIVER_ARCHIVE_CONCURRENCY")
    assert merged["archive.concurrency"] == 4
    assert sources["archive.layout"] == Source("file", path)
    assert sources["plivo.auth_id"] == Source("env", "PLIVO_AUTH_ID")
    assert sources["archive.catalog"] == Source("default")  # a flag that is None is unset
    assert str(sources["archive.layout"]) == f"file {path}"


def test_the_generated_name_wins_over_the_older_alias() -> None:
    env = {"ARCHIVER_DEST": "/alias", "ARCHIVER_ARCHIVE_DEST": "/generated"}
    merged, sources = merge(None, env)
    assert merged["archive.dest"] == "/generated"
    assert sources["archive.dest"].where == "ARCHIVER_ARCHIVE_DEST"
    assert merge(None, {"ARCHIVER_DEST": "/alias"})[0]["archive.dest"] == "/alias"


SAMPLES = {str: "s3://x/y", int: "7", float: "2.5", bool: "true"}


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_every_key_is_set_by_its_generated_variable(key: str) -> None:
    """Generated from SCHEMA: a key added there (a new section, like [dask]) has its variable."""
    kind, _ = SCHEMA[key]
    var = env_name(key)
    assert re.fullmatch(r"ARCHIVER_[A-Z0-9]+_[A-Z0-9_]+", var)
    merged, sources = merge(None, {var: SAMPLES[kind]})
    assert sources[key] == Source("env", var)
    assert merged[key] == {str: "s3://x/y", int: 7, float: 2.5, bool: True}[kind]


def test_the_readme_table_is_the_generated_one_and_covers_every_key() -> None:
    table = env_table()
    for key in SCHEMA:
        assert f"| `{key}` | `{env_name(key)}` |" in table
    for alias, key in ALIASES.items():
        assert re.search(rf"\| `{re.escape(key)}` \| [^\n]*`{alias}`", table), alias
    assert table in README.read_text(), (
        "README's variable table is stale: paste `archiver config env` over it"
    )


def test_unknown_archiver_variables_are_named() -> None:
    env = {"ARCHIVER_ARCHIVE_CONCURENCY": "4", "ARCHIVER_CONFIG": "x", "ARCHIVER_DEST": "d", "HOME": "/"}
    assert unknown_variables(env) == ["ARCHIVER_ARCHIVE_CONCURENCY"]


def test_env_file_slips_name_the_variable_and_never_show_the_value() -> None:
    from archiver.config import env_file_slips

    env = {
        "PLIVO_AUTH_TOKEN": '"tok-secret-1"',  # docker --env-file kept the quotes
        "AWS_SECRET_ACCESS_KEY": "abc/def+ghi\r",  # saved on Windows
        "ARCHIVER_DEST": "s3://b/p ",
        "CATAPULT_API_SECRET": "'x'",
        "PLIVO_AUTH_ID": "MA123",  # fine
        "HOME": '"/root"',  # not ours: none of our business
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    slips = dict(env_file_slips(env))
    assert set(slips) == {"PLIVO_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "ARCHIVER_DEST", "CATAPULT_API_SECRET"}
    assert "quotes" in slips["PLIVO_AUTH_TOKEN"] and "carriage return" in slips["AWS_SECRET_ACCESS_KEY"]
    assert "space" in slips["ARCHIVER_DEST"]
    assert not any("secret" in wrong or "abc" in wrong for wrong in slips.values())
