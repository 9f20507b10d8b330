"""Shared fixtures: a clean environment, the simulator, moto's S3 server, a CLI runner."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result

from archiver.cli import main
from archiver.sim import Simulator

# A suite started in the background of a non-interactive shell (`bash scripts/test.sh &`, some
# CI runners) inherits SIGINT ignored, and so would every process it starts, which no Ctrl-C
# then reaches: the tests of what a Ctrl-C does could not deliver one. A handler is reset to
# the default in a child at exec; "ignored" is inherited as it is.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PREFIXES = ("AWS_", "PLIVO_", "CATAPULT_", "ARCHIVER_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's credentials, config or endpoints."""
    for key in list(os.environ):
        if key.startswith(PREFIXES):
            monkeypatch.delenv(key)
    # boto3 must never find real credentials or a config file; the catalog lives per test.
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))  # no ~/.config/archiver/config.toml
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))


FROZEN = datetime(2026, 6, 15, 13, 37, 11, tzinfo=UTC)


@pytest.fixture
def freeze(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], datetime]:
    """Freeze the product's clock (``archiver.timeutil.clock``) at a given instant.

    Every test whose outcome depends on "now" (relative dates, range ends, deletion and
    retention cutoffs) freezes it, so its result cannot change with the hour or the date."""
    from archiver import timeutil

    def at(when: datetime = FROZEN) -> datetime:
        monkeypatch.setattr(timeutil, "clock", lambda: when)
        return when

    return at


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(recordings=30, seed=7, stall_seconds=5.0) as s:
        yield s


FAST = {"CATAPULT_REQUESTS_PER_SECOND": "500", "PLIVO_REQUESTS_PER_SECOND": "500"}


@pytest.fixture
def use_sim(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    """Point the environment at a simulator (pacing fast enough for tests); returns the env."""

    def use(sim: Simulator, **extra: str) -> dict[str, str]:
        env = sim.env() | FAST | extra
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    return use


@pytest.fixture
def sim_env(sim: Simulator, use_sim: Callable[..., dict[str, str]]) -> dict[str, str]:
    """The default simulator's variables in the environment."""
    return use_sim(sim)


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> S3:
    """A fresh bucket on moto's real HTTP server, and the AWS_* variables pointing at it."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    name = request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    bucket = ("b-" + name).rstrip("-")  # S3's naming rules: a bucket name ends in a letter or digit
    client.create_bucket(Bucket=bucket)
    return S3(moto_endpoint, bucket, client)


@pytest.fixture
def cli() -> CliInvoker:
    return CliInvoker()


class CliInvoker:
    """Runs ``archiver`` in-process with the current environment."""

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)


# The two months the integration tests' simulators fill (Simulator(seed=...) dates).
RANGE = ("--since", "2024-01-01", "--until", "2024-03-01")


class Backfill:
    """``backfill(provider, dest, *extra)``: ``archiver backfill`` over :data:`RANGE` (or
    ``since``/``until``), in-process; ``.range`` is the range's flags for other commands."""

    range = RANGE

    def __init__(self, cli: CliInvoker) -> None:
        self._cli = cli

    def __call__(
        self, provider: str, dest: str, *extra: str, since: str | None = None, until: str | None = None
    ) -> Result:
        span = ("--since", since or RANGE[1], "--until", until or RANGE[3])
        return self._cli("backfill", "--provider", provider, *span, "--dest", dest, *extra)


@pytest.fixture
def backfill(cli: CliInvoker) -> Backfill:
    return Backfill(cli)
