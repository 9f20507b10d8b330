from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import load_settings
from archiver.errors import ConfigError


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[archive]\nconcurrency = 3\ndest = "/file"\n[plivo]\nauth_id = "MAfile"\n')
    s = load_settings(str(cfg), {})
    assert (s.archive.concurrency, s.archive.dest, s.plivo.auth_id) == (3, "/file", "MAfile")
    s = load_settings(str(cfg), {"ARCHIVER_CONCURRENCY": "5", "PLIVO_AUTH_ID": "MAenv"})
    assert (s.archive.concurrency, s.plivo.auth_id) == (5, "MAenv")
    s = load_settings(
        str(cfg), {"ARCHIVER_CONCURRENCY": "5"}, {"archive.concurrency": 9, "archive.dest": None}
    )
    assert s.archive.concurrency == 9 and s.archive.dest == "/file"
    assert load_settings(None, {}).catapult.base_url == "https://api.catapult.inetwork.com"


def test_unknown_keys_and_bad_values_are_config_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text("[archive]\nconcurency = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'archive.concurency'"):
        load_settings(str(cfg), {})
    with pytest.raises(ConfigError, match="ARCHIVER_CONCURRENCY"):
        load_settings(None, {"ARCHIVER_CONCURRENCY": "lots"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"), {})
    with pytest.raises(ConfigError, match="base_url"):
        load_settings(None, {"PLIVO_BASE_URL": "ftp://x"})


def test_missing_credentials_named(tmp_path: Path) -> None:
    s = load_settings(None, {"PLIVO_AUTH_ID": "MA1"})
    with pytest.raises(ConfigError, match="PLIVO_AUTH_TOKEN"):
        s.require_provider("plivo")
    s = load_settings(None, {"CATAPULT_USER_ID": "u-1"})
    with pytest.raises(ConfigError, match="CATAPULT_API_TOKEN, CATAPULT_API_SECRET"):
        s.require_provider("catapult")


def test_secrets_hidden_from_repr() -> None:
    s = load_settings(
        None,
        {
            "PLIVO_AUTH_ID": "MA1",
            "PLIVO_AUTH_TOKEN": "tok-very-secret",
            "CATAPULT_API_SECRET": "cat-very-secret",
        },
    )
    assert "very-secret" not in repr(s)
    assert set(s.secrets()) == {"tok-very-secret", "cat-very-secret"}


def test_example_config_documents_every_key() -> None:
    from archiver.config import SCHEMA

    example = Path(__file__).parents[2] / "config" / "archiver.example.toml"
    text = example.read_text()
    for dotted in SCHEMA:
        section, key = dotted.split(".")
        assert f"[{section}]" in text and f"{key} =" in text, dotted
