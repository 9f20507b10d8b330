"""Backfills on a real Dask cluster: a scheduler and two worker processes on loopback,
against the simulator and moto's S3 server."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from archiver import api  # noqa: E402
from archiver.cluster import DaskExecutor  # noqa: E402
from archiver.config import load_settings  # noqa: E402
from archiver.sim import Simulator  # noqa: E402

SINCE, UNTIL = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
RATE = 8.0  # requests per second the provider account is paced at, in total (each worker alone
# lists about 10 windows a second: unshared, two would ask for about twice this)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(recordings=30, seed=71, stall_seconds=4.0) as s:
        yield s


@pytest.fixture(scope="module")
def cluster(sim: Simulator, moto_endpoint: str) -> Iterator[Any]:
    """Two worker processes, one thread each. Their credentials come from their own
    environment (set when they start), never from the driver."""
    env = sim.env() | {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", env=env
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def settings_for(dest: str, catalog: str) -> Any:
    return load_settings(None, os.environ, {"archive.dest": dest, "archive.catalog": catalog})


def archive_of(s3: Any, prefix: str) -> dict[str, str]:
    """Every object under prefix (key relative to it -> SHA-256 of its bytes), sidecars'
    timestamps aside."""
    out = {}
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(".json") or "/_custody/" in key:
                continue  # hold when it was fetched and archived, and by whom
            body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
            out[key.removeprefix(prefix + "/")] = hashlib.sha256(body).hexdigest()
    return out


def sidecars(s3: Any, prefix: str) -> set[str]:
    pages = s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix + "/")
    return {
        o["Key"].removeprefix(prefix + "/")
        for p in pages
        for o in p.get("Contents", [])
        if o["Key"].endswith(".json")
    }


def test_the_same_archive_on_the_thread_pool_and_on_the_cluster_with_the_rate_kept_in_total(
    sim: Simulator, cluster: Any, s3: Any, use_sim, freeze, tmp_path
) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    use_sim(sim)
    pool = api.backfill(
        settings_for(f"s3://{s3.bucket}/pool", str(tmp_path / "pool.db")), "plivo", SINCE, UNTIL
    )
    assert pool.exit_code in (0, 1) and pool.counts["failed"] == 0, pool.summary()
    use_sim(sim, PLIVO_REQUESTS_PER_SECOND=str(RATE))  # the driver's settings go to the workers
    media_before = sim.stats["plivo.media.requests"]
    start = time.monotonic()
    on_dask = api.backfill(
        settings_for(f"s3://{s3.bucket}/dask", str(tmp_path / "dask.db")),
        "plivo",
        SINCE,
        UNTIL,
        executor=DaskExecutor(cluster, max_tasks_in_flight=8),
    )
    assert on_dask.counts == pool.counts and on_dask.listed == pool.listed, on_dask.summary()
    # Every recording once and true: the same files, byte for byte, one download each.
    assert archive_of(s3, "dask") == archive_of(s3, "pool") and archive_of(s3, "dask")
    assert sidecars(s3, "dask") == sidecars(s3, "pool")
    assert sim.stats["plivo.media.requests"] - media_before == on_dask.counts["archived"]
    # Two workers listing 60 windows at once asked one limiter: in no second did the
    # provider see more than the account's rate (one more for the second's two edges).
    api_calls = [
        t for t, key in sim.times if t >= start and key in ("plivo.list.requests", "plivo.get.requests")
    ]
    assert len(api_calls) >= 60
    busiest = max(sum(1 for u in api_calls if t <= u < t + 1.0) for t in api_calls)
    assert busiest <= RATE + 1, busiest
    # The driver alone finished the windows: a second run lists nothing.
    again = api.backfill(
        settings_for(f"s3://{s3.bucket}/dask", str(tmp_path / "dask.db")),
        "plivo",
        SINCE,
        UNTIL,
        executor=DaskExecutor(cluster),
    )
    assert again.listed == 0 and again.exit_code == 0


def test_a_worker_killed_mid_run_costs_nothing(
    sim: Simulator, cluster: Any, s3: Any, use_sim, freeze, tmp_path
) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    use_sim(sim)
    downloadable = [r for r in sim.plivo if r.state == "complete"]
    victim = downloadable[len(downloadable) // 2].id
    sim.plan.add(f"stall:{victim}*1")
    stalled = sim.stats["media.stalled"]
    settings = settings_for(f"s3://{s3.bucket}/k", str(tmp_path / "k.db"))
    got: dict[str, Any] = {}
    run = threading.Thread(
        target=lambda: got.update(
            result=api.backfill(settings, "plivo", SINCE, UNTIL, executor=DaskExecutor(cluster))
        )
    )
    run.start()
    deadline = time.monotonic() + 60
    while sim.stats["media.stalled"] == stalled:  # a worker is inside a download now
        assert time.monotonic() < deadline and run.is_alive(), "the stalled download never came"
        time.sleep(0.01)
    busy = cluster.run(lambda dask_worker: (os.getpid(), len(dask_worker.state.executing)))
    pid = next(p for p, executing in busy.values() if executing)
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=120)
    assert not run.is_alive()
    result = got["result"]
    assert result.exit_code in (0, 1) and result.counts["failed"] == 0 and not result.fatal, result.summary()
    # Each once: what the lost worker had stored before it died is found there (skipped).
    assert result.counts["archived"] + result.counts["skipped"] == len(downloadable)
    assert len(sidecars(s3, "k")) == len(downloadable)
    again = api.backfill(settings, "plivo", SINCE, UNTIL, executor=DaskExecutor(cluster))
    assert again.listed == 0


class Recorded:
    """The cluster's client, keeping what the run sends to the workers."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent: list[bytes] = []

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(cloudpickle.dumps(args))
        return self._client.submit(fn, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_no_credential_travels_to_the_workers_and_the_cli_runs_on_a_scheduler(
    sim: Simulator, cluster: Any, s3: Any, use_sim, freeze, backfill, tmp_path
) -> None:
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    env = use_sim(sim)
    recorded = Recorded(cluster)
    settings = settings_for(f"s3://{s3.bucket}/quiet", str(tmp_path / "q.db"))
    result = api.backfill(settings, "plivo", SINCE, UNTIL, executor=DaskExecutor(recorded))
    assert result.counts["archived"] > 0 and recorded.sent
    token = env["PLIVO_AUTH_TOKEN"].encode()
    basic = base64.b64encode(f"{env['PLIVO_AUTH_ID']}:{env['PLIVO_AUTH_TOKEN']}".encode())
    assert not any(token in payload or basic in payload for payload in recorded.sent)
    # The command line, on the same cluster by its address.
    r = backfill(
        "plivo",
        f"s3://{s3.bucket}/cli",
        "--catalog",
        str(tmp_path / "cli.db"),
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler.address,
    )
    assert r.exit_code in (0, 1) and f"archived={result.counts['archived']} " in r.output, r.output
    assert sidecars(s3, "cli") == sidecars(s3, "quiet")


def test_doctor_checks_every_worker(sim: Simulator, cluster: Any, s3: Any, use_sim, cli, tmp_path) -> None:
    use_sim(sim)
    r = cli(
        "doctor",
        "--provider",
        "plivo",
        "--dest",
        f"s3://{s3.bucket}/d",
        "--catalog",
        str(tmp_path / "d.db"),
        "--executor",
        "dask",
        "--scheduler",
        cluster.scheduler.address,
    )
    assert r.exit_code == 0, r.output
    assert r.output.count("OK    dask worker tcp://") == 2, r.output


def test_a_worker_without_credentials_or_with_other_versions_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from archiver.cluster import worker_facts
    from archiver.doctor import check_workers, versions

    driver = load_settings(
        None, {"PLIVO_AUTH_ID": "MAXXXXXXXXXXXXXXXXXX", "PLIVO_AUTH_TOKEN": "s3cr3t-t0k3n"}, {}
    )
    driver = load_settings(None, {}, {"archive.dest": str(tmp_path / "a")}).with_secrets_of(driver)
    facts = worker_facts(driver.without_secrets(), ("plivo",))  # this process: no PLIVO_* set
    assert facts["plivo_credentials"] == "missing" and "s3cr3t-t0k3n" not in repr(facts)
    older = dict(versions(), archiver="0.0.1")
    found = list(
        check_workers({"tcp://w1": facts, "tcp://w2": {"versions": older, "problems": []}}, versions())
    )
    assert [f.level for f in found] == ["fail", "fail"]
    assert "PLIVO_AUTH_ID" in found[0].message or "PLIVO_AUTH_TOKEN" in found[0].message
    assert "archiver 0.0.1 (driver" in found[1].message


def test_ctrl_c_at_the_terminal_stops_a_local_cluster_run_cleanly_and_it_resumes(
    sim: Simulator, tmp_path
) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C does): the driver alone
    acts on it (its local:N workers ignore it), exits 130 with no worker traceback, and the
    next run archives the rest, nothing twice."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CATAPULT_", "ARCHIVER_"))}
    env |= sim.env() | {"PLIVO_REQUESTS_PER_SECOND": "5", "XDG_STATE_HOME": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "archiver", "backfill", "--provider", "plivo", "--since", "2024-01-01"]
    argv += [
        "--until",
        "2024-03-01",
        "--dest",
        str(tmp_path / "a"),
        "--executor",
        "dask",
        "--scheduler",
        "local:2",
    ]
    listed = sim.stats["plivo.list.requests"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while sim.stats["plivo.list.requests"] < listed + 8:  # mid-run: 8 of 60 windows listed
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "STOPPED by SIGINT" in out, (out, err)
    assert "Traceback" not in err, err
    first = int(out.split("archived=")[1].split()[0])
    env["PLIVO_REQUESTS_PER_SECOND"] = "500"
    again = subprocess.run(argv[:-4], env=env, capture_output=True, text=True, timeout=120)
    done = int(again.stdout.split("archived=")[1].split()[0]) + int(
        again.stdout.split("skipped=")[1].split()[0]
    )
    complete = [r for r in sim.plivo if r.state == "complete"]
    assert again.returncode in (0, 1) and first + done == len(complete), (out, again.stdout)


def test_two_runs_share_a_cluster_at_once(sim: Simulator, s3: Any, use_sim, freeze, tmp_path) -> None:
    """Two backfills (two destinations) on one cluster at the same time, on a worker with
    several threads: each run keeps its own session there, and neither run's start or end
    closes the other's while its tasks use it."""
    import logging

    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    use_sim(sim)
    archiver_log = logging.getLogger("archiver")
    saved = (list(archiver_log.handlers), archiver_log.propagate)
    root_filters = [(h, list(h.filters)) for h in logging.getLogger().handlers]
    results: dict[str, Any] = {}
    try:
        # One in-process worker with 4 threads: tasks of both runs run on it side by side.
        with (
            distributed.LocalCluster(
                n_workers=1, threads_per_worker=4, processes=False, dashboard_address=":0"
            ) as lc,
            distributed.Client(lc) as client,
        ):

            def one(name: str) -> None:
                settings = settings_for(f"s3://{s3.bucket}/{name}", str(tmp_path / f"{name}.db"))
                results[name] = api.backfill(settings, "plivo", SINCE, UNTIL, executor=DaskExecutor(client))

            runs = [threading.Thread(target=one, args=(name,)) for name in ("c1", "c2")]
            for run in runs:
                run.start()
            for run in runs:
                run.join(timeout=120)
    finally:  # the worker ran in this process: give the test process its logging back
        archiver_log.handlers[:], archiver_log.propagate = saved
        for handler, filters in root_filters:
            handler.filters[:] = filters
    assert set(results) == {"c1", "c2"}
    for result in results.values():
        assert result.counts["failed"] == 0 and not result.fatal, result.summary()
    assert results["c1"].counts == results["c2"].counts
    assert sidecars(s3, "c1") == sidecars(s3, "c2") and sidecars(s3, "c1")
