"""Fixtures of the hostile suite: a scripted server standing in for a provider, and quick
ways to point the archiver at it (fast pacing, few retries, so faults answer in seconds)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scripted import Scripted
from stand_in import CAT_SECRET, CAT_TOKEN, CAT_USER, PLIVO_ID, PLIVO_TOKEN


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with Scripted() as srv:
        yield srv


@pytest.fixture
def quick_config(tmp_path: Path) -> Callable[..., str]:
    """A config file with few, short retries (``--config`` it); extra TOML lines appended."""

    def make(*extra: str) -> str:
        path = tmp_path / "quick.toml"
        path.write_text(
            "[http]\nmax_attempts = 2\nmax_retry_seconds = 2.0\ntimeout_seconds = 5.0\n"
            + "\n".join(extra)
            + "\n"
        )
        return str(path)

    return make


@pytest.fixture
def plivo_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Scripted], str]:
    """Point the Plivo client at a scripted server; returns the Recording/ list path."""

    def use(srv: Scripted) -> str:
        monkeypatch.setenv("PLIVO_AUTH_ID", PLIVO_ID)
        monkeypatch.setenv("PLIVO_AUTH_TOKEN", PLIVO_TOKEN)
        monkeypatch.setenv("PLIVO_BASE_URL", srv.url)
        monkeypatch.setenv("PLIVO_REQUESTS_PER_SECOND", "1000")
        return f"/v1/Account/{PLIVO_ID}/Recording/"

    return use


@pytest.fixture
def catapult_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Scripted], str]:
    """Point the Catapult client at a scripted server; returns the user's root path."""

    def use(srv: Scripted) -> str:
        monkeypatch.setenv("CATAPULT_USER_ID", CAT_USER)
        monkeypatch.setenv("CATAPULT_API_TOKEN", CAT_TOKEN)
        monkeypatch.setenv("CATAPULT_API_SECRET", CAT_SECRET)
        monkeypatch.setenv("CATAPULT_BASE_URL", srv.url)
        monkeypatch.setenv("CATAPULT_REQUESTS_PER_SECOND", "1000")
        return f"/v1/users/{CAT_USER}"

    return use
