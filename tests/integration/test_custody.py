"""Issue 13 items 3-5: sampled verification with coverage, self-repair from the provider, and
the tamper-evident custody log, end to end over the simulator, moto and the real CLI."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from archiver.compliance import custody
from archiver.sim import Simulator
from archiver.storage import open_storage


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "catalog.db"
    monkeypatch.setenv("ARCHIVER_CATALOG", str(path))
    return path


@pytest.fixture
def archive(backfill, tmp_path: Path, use_sim, catalog: Path, freeze) -> tuple[Simulator, Path]:
    """Eight Plivo recordings archived (eight originals), the clock frozen; the simulator is
    left running for repairs."""
    freeze()
    sim = Simulator(recordings=8, seed=41).start()
    use_sim(sim)
    dest = tmp_path / "arch"
    r = backfill("plivo", str(dest))
    assert r.exit_code == 0, r.output
    yield sim, dest
    sim.stop()


def originals(dest: Path) -> dict[str, dict]:
    """Recording id -> its original's sidecar entry."""
    out = {}
    for side in dest.rglob("*.json"):
        if "_custody" in side.parts:
            continue
        doc = json.loads(side.read_text())
        out[doc["recording"]["recording_id"]] = doc["files"][0]
    return out


def verified(catalog: Path, dest: Path) -> dict:
    db = Catalog(str(catalog))
    try:
        return db.verifications(str(dest.resolve()))
    finally:
        db.close()


# --- sampled verification -------------------------------------------------------------------


def test_two_half_samples_cover_every_file_once(cli, archive, catalog: Path, freeze, tmp_path: Path) -> None:
    _, dest = archive
    first = freeze()
    r1 = cli("verify", "--dest", str(dest), "--sample", "50%", "--report", str(tmp_path / "r1.json"))
    assert r1.exit_code == 0, r1.output
    after1 = verified(catalog, dest)
    assert len(after1) == 4 and {v.verified_at for v in after1.values()} == {first}
    assert "(sample: 50% of 8 files)" in r1.output and "never_verified=4" in r1.output

    second = freeze(first + timedelta(days=1))
    metrics = tmp_path / "verify.prom"
    r2 = cli(
        "verify", "--dest", str(dest), "--sample", "50%", "--report", str(tmp_path / "r2.json"),
        "--metrics-file", str(metrics),
    )  # fmt: skip
    assert r2.exit_code == 0, r2.output
    after2 = verified(catalog, dest)
    # The second half, each file once: the first run's four kept their time.
    assert set(after2) == set(v["key"] for v in originals(dest).values())
    assert {k: v.verified_at for k, v in after2.items() if k in after1} == dict.fromkeys(after1, first)
    assert sorted(v.verified_at for v in after2.values()) == [first] * 4 + [second] * 4
    report = json.loads((tmp_path / "r2.json").read_text())
    assert report["files_checked"] == 4 and report["sample"] == "50%"
    cov = report["coverage"]
    assert cov["verified_within"] == {"30d": 1.0, "90d": 1.0, "365d": 1.0}
    assert cov["never_verified"] == 0 and cov["oldest_verification"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = metrics.read_text()
    assert f'archiver_verify_coverage_ratio{{dest="{dest.resolve()}",within="30d"}} 1.0' in text
    oldest = f'archiver_verify_oldest_verification_timestamp_seconds{{dest="{dest.resolve()}"}}'
    assert f"{oldest} {first.timestamp():.3f}" in text

    # 31 days on, the first half is out of the 30-day window: a sample of 2 reads two of it.
    third = freeze(first + timedelta(days=31))
    r3 = cli("verify", "--dest", str(dest), "--sample", "2", "--report", str(tmp_path / "r3.json"))
    cov3 = json.loads((tmp_path / "r3.json").read_text())["coverage"]
    assert r3.exit_code == 0 and cov3["verified_within"]["30d"] == 0.75  # 2 now + 4 a month ago
    assert cov3["verified_within"]["90d"] == 1.0
    assert cov3["oldest_verification"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
    reread = {k for k, v in verified(catalog, dest).items() if v.verified_at == third}
    assert len(reread) == 2 and reread <= set(after1)


def test_nightly_sample_finds_a_tampered_file_within_its_period_and_keeps_reporting_it(
    cli, archive, freeze
) -> None:
    _, dest = archive
    start = freeze()
    assert cli("verify", "--dest", str(dest)).exit_code == 0  # everything verified once, now
    victim = sorted(v["key"] for v in originals(dest).values())[0]  # read first again: the least recent tie
    path = dest / victim
    data = bytearray(path.read_bytes())
    data[200] ^= 0x01
    path.write_bytes(bytes(data))
    nights = []
    for night in range(1, 5):  # 25% a night: the whole archive in 4 nights
        freeze(start + timedelta(days=night))
        r = cli("verify", "--dest", str(dest), "--sample", "25%")
        nights.append((r.exit_code, "altered recording" in r.output and victim in r.output))
    found = next(i for i, (_, seen) in enumerate(nights) if seen)
    assert found < 4
    # Once found, every later sample reads it again (it stays failing until repaired).
    assert all(code == 1 and seen for code, seen in nights[found:])
    assert all(code == 0 for code, _ in nights[:found])


def test_sample_is_refused_when_malformed(cli, archive) -> None:
    _, dest = archive
    for bad in ("0%", "150%", "ten", "-3"):
        r = cli("verify", "--dest", str(dest), "--sample", bad)
        assert r.exit_code == 2 and "--sample" in r.output, (bad, r.output)


# --- repair ---------------------------------------------------------------------------------


def test_repair_restores_deleted_and_altered_originals_and_reports_the_rest(
    cli, archive, tmp_path: Path
) -> None:
    sim, dest = archive
    files = originals(dest)
    ids = sorted(files)
    deleted, altered, gone, relabelled = ids[:4]
    (dest / files[deleted]["key"]).unlink()
    (dest / files[altered]["key"]).write_bytes(b"ID3 not the recording at all")
    (dest / files[gone]["key"]).unlink()
    sim.deleted.add(gone)  # the provider no longer has it
    # A sidecar whose SHA-256 was changed: the provider's bytes are no proof of it.
    side = next(p for p in dest.rglob(f"{relabelled}.json"))
    side.write_text(side.read_text().replace(files[relabelled]["sha256"], "0" * 64))

    report = tmp_path / "repair.json"
    r = cli("verify", "--dest", str(dest), "--repair", "--report", str(report))
    assert r.exit_code == 1, r.output
    results = {x["recording_id"]: x for x in json.loads(report.read_text())["repairs"]}
    assert {k: v["result"] for k, v in results.items()} == {
        deleted: "repaired",
        altered: "repaired",
        gone: "unrepairable",
        relabelled: "unrepairable",
    }
    assert "gone at the provider" in results[gone]["detail"]
    assert "the provider's bytes differ" in results[relabelled]["detail"]
    by_id = {rec.id: rec for rec in sim.plivo}
    for rid in (deleted, altered):
        restored = (dest / files[rid]["key"]).read_bytes()
        assert restored == sim.media_bytes(by_id[rid])
        assert hashlib.sha256(restored).hexdigest() == files[rid]["sha256"]
    assert "repaired=2 unrepairable=2 locked=0" in r.output
    assert not (dest / files[gone]["key"]).exists()
    assert not list(dest.rglob(".archiver-tmp-*"))

    # The repair is in the custody log; what is left is reported again.
    events = [json.loads(line) for line in custody.read_segment(open_storage(str(dest)))[0].splitlines()]
    assert [e["action"] for e in events] == ["archive", "repair"]
    assert {x["recording_id"]: x["result"] for x in events[1]["details"]["repairs"]} == {
        k: v["result"] for k, v in results.items()
    }
    again = cli("verify", "--dest", str(dest))
    assert again.exit_code == 1
    assert "missing=1" in again.output and "altered=1" in again.output


def test_repair_never_touches_a_recording_under_object_lock(
    backfill, cli, s3, use_sim, catalog: Path, freeze, tmp_path: Path
) -> None:
    freeze()
    bucket = s3.bucket + "-lock"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    dest = f"s3://{bucket}/a"
    with Simulator(recordings=2, seed=42) as sim:
        use_sim(sim)
        lock = ("--object-lock-mode", "GOVERNANCE", "--retain-days", "36500")
        assert backfill("plivo", dest, *lock).exit_code == 0
        key = next(
            o["Key"]
            for o in s3.client.list_objects_v2(Bucket=bucket)["Contents"]
            if o["Key"].endswith(".mp3")
        )
        s3.client.delete_object(Bucket=bucket, Key=key)  # a delete marker: the locked version stays
        report = tmp_path / "r.json"
        r = cli("verify", "--dest", dest, "--repair", "--report", str(report))
        assert r.exit_code == 1, r.output
        (repair,) = json.loads(report.read_text())["repairs"]
        assert repair["result"] == "locked" and "retention until" in repair["detail"]
        assert sim.stats["plivo.media.requests"] == 2  # the two archived; nothing downloaded again
        versions = s3.client.list_object_versions(Bucket=bucket, Prefix=key)
        assert len(versions.get("Versions", [])) == 1  # no new version written


# --- the custody log ------------------------------------------------------------------------


def _events(dest: Path) -> list[Path]:
    return sorted((dest / "_custody").iterdir())


def test_every_action_appends_to_one_intact_chain_and_exports_carry_it(
    backfill, cli, archive, tmp_path: Path
) -> None:
    sim, dest = archive
    assert backfill("plivo", str(dest)).exit_code == 0  # a second run changes nothing: no event
    out = tmp_path / "audit"
    assert cli("export", "--dest", str(dest), "--out", str(out), "--number", "+14155550100").exit_code == 0
    rid = sorted(originals(dest))[0]
    r = cli("forget", "--provider", "plivo", "--dest", str(dest), "--archived", rid)
    assert r.exit_code == 0, r.output

    names = [p.name for p in _events(dest)]
    assert names == [f"{n:012d}.jsonl" for n in range(1, 4)]
    docs = [json.loads(p.read_bytes()) for p in _events(dest)]
    assert [d["action"] for d in docs] == ["archive", "export", "forget"]
    assert docs[0]["details"]["counts"]["archived"] == 8 and docs[0]["details"]["command"] == "backfill"
    assert docs[2]["details"]["recording_ids"] == [rid]
    assert docs[1]["details"]["selection"] == {"number": "+*******0100"}  # masked in the log
    for prev, doc, path in zip([None, *_events(dest)[:-1]], docs, _events(dest), strict=True):
        assert doc["prev"] == (hashlib.sha256(prev.read_bytes()).hexdigest() if prev else None)
        assert path.read_bytes() == custody.render_event(doc)
    ok = cli("custody", "verify", "--dest", str(dest))
    assert ok.exit_code == 0 and "3 event(s), intact" in ok.output
    shown = cli("custody", "show", "--dest", str(dest))
    assert shown.exit_code == 0 and len(shown.output.splitlines()) == 3 and "forget" in shown.output

    # The export holds the chain up to itself; its own event names it by its id.
    log = (out / "CUSTODY-LOG.jsonl").read_bytes()
    assert log == _events(dest)[0].read_bytes()
    doc = json.loads((out / "CUSTODY.json").read_text())
    assert doc["custody_log"]["events"] == 1 and doc["custody_log"]["verified"] is True
    assert doc["custody_log"]["head_sha256"] == hashlib.sha256(log).hexdigest()
    assert docs[1]["details"]["export_id"] == hashlib.sha256((out / "CUSTODY.json").read_bytes()).hexdigest()
    assert "CUSTODY-LOG.jsonl" in (out / "SHA256SUMS").read_text()
    assert cli("custody", "verify", "--file", str(out / "CUSTODY-LOG.jsonl")).exit_code == 0
    # The log is the destination's own: verify sees no orphan, reindex no sidecar in it.
    v = cli("verify", "--dest", str(dest))
    assert v.exit_code == 0 and "orphaned=0" in v.output


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder", "truncate", "rewrite-last"])
def test_custody_verify_names_the_first_broken_link(cli, archive, tamper: str, tmp_path: Path) -> None:
    _, dest = archive
    for n in range(3):  # events 2 to 4
        assert cli("export", "--dest", str(dest), "--out", str(tmp_path / f"x{n}")).exit_code == 0
    assert cli("custody", "verify", "--dest", str(dest)).exit_code == 0  # the catalog saw event 4
    events = _events(dest)
    assert len(events) == 4
    if tamper == "edit":  # event 2 edited in place, still canonical JSON
        events[1].write_bytes(events[1].read_bytes().replace(b'"format":"plain"', b'"format":"bagit"'))
        want = "first at event 2 (_custody/000000000002.jsonl): altered or replaced"
    elif tamper == "delete":
        events[1].unlink()
        want = "first at event 2 (_custody/000000000002.jsonl): missing: event 2 deleted"
    elif tamper == "reorder":
        two, three = events[1].read_bytes(), events[2].read_bytes()
        events[1].write_bytes(three)
        events[2].write_bytes(two)
        want = "first at event 2 (_custody/000000000002.jsonl): holds event 3, not 2"
    elif tamper == "truncate":  # the end deleted: no successor tells, the catalog does
        events[3].unlink()
        want = "first at event 4 (_custody/000000000004.jsonl): missing: the chain ends at event 3"
    else:
        events[3].write_bytes(events[3].read_bytes().replace(b'"format":"plain"', b'"format":"bagit"'))
        want = "first at event 4 (_custody/000000000004.jsonl): altered or replaced: this catalog saw it"
    r = cli("custody", "verify", "--dest", str(dest))
    assert r.exit_code == 1
    assert want in r.output, r.output


def test_concurrent_appends_keep_one_chain_local_and_s3(s3, tmp_path: Path, freeze) -> None:
    freeze()
    for url in (str(tmp_path / "a"), f"s3://{s3.bucket}/a"):
        storage = open_storage(url)
        gate = threading.Barrier(4)
        errors: list[BaseException] = []

        def writer(n: int, storage=storage, gate=gate, errors=errors) -> None:
            try:
                gate.wait()
                for i in range(5):
                    custody.append(storage, "test", {"writer": n, "i": i})
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        check = custody.check_chain(custody.stored_events(storage))
        assert check.ok, check.problems
        assert [e.seq for e in check.events] == list(range(1, 21))
        assert sorted((e.doc["details"]["writer"], e.doc["details"]["i"]) for e in check.events) == sorted(
            (n, i) for n in range(4) for i in range(5)
        )
        storage.close()


def test_custody_events_on_s3_take_the_buckets_object_lock(s3, freeze) -> None:
    now = freeze()
    bucket = s3.bucket + "-lock"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    storage = open_storage(f"s3://{bucket}/a")
    first = custody.append(storage, "test", {})
    head = s3.client.head_object(Bucket=bucket, Key="a/" + first.where)
    assert head["ObjectLockMode"] == "GOVERNANCE" and "ObjectLockRetainUntilDate" in head
    # The configured lock mode wins: retained retain_days from now.
    second = custody.append(storage, "test", {}, protection=custody.event_protection("COMPLIANCE", 3650, now))
    head = s3.client.head_object(Bucket=bucket, Key="a/" + second.where)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs(head["ObjectLockRetainUntilDate"] - (now + timedelta(days=3650))) < timedelta(seconds=1)
    storage.close()


@pytest.mark.parametrize("cut", [1, 2])
def test_a_run_after_the_end_was_cut_never_hides_it(backfill, cli, archive, cut: int, tmp_path: Path) -> None:
    """Deleting the last events and letting a run append after what is left: the catalog's
    anchor stays on the event it saw, so the run says so and `custody verify` still names it."""
    _, dest = archive
    for n in range(2):
        assert cli("export", "--dest", str(dest), "--out", str(tmp_path / f"x{n}")).exit_code == 0
    assert cli("custody", "verify", "--dest", str(dest)).exit_code == 0  # the catalog saw event 3
    for event in _events(dest)[-cut:]:
        event.unlink()
    report = tmp_path / "run.json"
    r = backfill("plivo", str(dest), "--force", "--report", str(report))  # archives again: appends
    assert r.exit_code == 1, r.output
    custody_failures = [
        f["error"] for f in json.loads(report.read_text())["failures"] if f["stage"] == "custody"
    ]
    assert custody_failures and "which this catalog saw, is gone from the custody log" in custody_failures[0]
    for _ in range(2):  # and no later run carries the anchor past it either
        v = cli("custody", "verify", "--dest", str(dest))
        assert v.exit_code == 1 and "first at event 3" in v.output, v.output
        again = backfill("plivo", str(dest), "--force")
        assert again.exit_code == 1, again.output
