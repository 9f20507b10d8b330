"""Exports an auditor can check with standard tools, and verification that finds tampering."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.cli import main
from archiver.compliance.export import FolderSink, mask_number, run_export
from archiver.compliance.verify import verify_archive
from archiver.errors import StorageError
from archiver.sidecars import Selection
from archiver.sim import Simulator
from archiver.storage import LocalStorage


@pytest.fixture
def archive(backfill, cli, tmp_path: Path, use_sim) -> tuple[Simulator, Path]:
    with Simulator(recordings=8, seed=31) as sim:
        use_sim(sim)
        dest = tmp_path / "arch"
        r = backfill("plivo", str(dest), "--transcode", "mp3-mono-32k")
        assert r.exit_code == 0, r.output
    return sim, dest


def test_mask_number() -> None:
    assert mask_number("+14155550100") == "+*******0100"
    assert mask_number("14155550100") == "*******0100"
    assert mask_number("sip:agent@example.com") == "sip:*****@example.com"
    assert mask_number(None) is None


def test_folder_export_passes_sha256sum(cli, archive, tmp_path: Path) -> None:
    sim, dest = archive
    out = tmp_path / "export"
    r = cli("export", "--dest", str(dest), "--out", str(out), "--since", "2024-02-01", "--mask-numbers")
    assert r.exit_code == 0, r.output
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    expected = {r.id for r in sim.plivo if r.started.isoformat() >= "2024-02-01"}
    assert {row["recording_id"] for row in rows} == expected and expected
    assert all(row["role"] == "original" for row in rows)  # renditions only with --with-renditions
    for row in rows:
        assert hashlib.sha256((out / row["key"]).read_bytes()).hexdigest() == row["sha256"]
        for number in (row["from_number"], row["to_number"]):
            assert not number or "*" in number
    custody = json.loads((out / "CUSTODY.json").read_text())
    assert custody["manifest_json_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert custody["counts"]["recordings"] == len(expected)
    assert custody["selection"]["since"] == "2024-02-01T00:00:00Z"
    assert not list(tmp_path.glob(".export.partial-*"))


def test_zip_export_with_renditions(cli, archive, tmp_path: Path) -> None:
    sim, dest = archive
    out = tmp_path / "audit.zip"
    r = cli("export", "--dest", str(dest), "--out", str(out), "--with-renditions")
    assert r.exit_code == 0, r.output
    with zipfile.ZipFile(out) as zf:
        sums = dict(reversed(line.split("  ", 1)) for line in zf.read("SHA256SUMS").decode().splitlines())
        for name, digest in sums.items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == digest
        manifest = json.loads(zf.read("manifest.json"))
    assert len(manifest) == 2 * len(sim.plivo)
    assert {m["role"] for m in manifest} == {"original", "rendition"}


def test_s3_archive_exports_to_s3(backfill, cli, tmp_path: Path, monkeypatch, s3, use_sim) -> None:
    with Simulator(recordings=4, seed=32) as sim:
        use_sim(sim)
        assert backfill("plivo", f"s3://{s3.bucket}/arch").exit_code == 0
    r = cli("export", "--dest", f"s3://{s3.bucket}/arch", "--out", f"s3://{s3.bucket}/exports/one")
    assert r.exit_code == 0, r.output
    local = tmp_path / "dl"
    for obj in s3.client.list_objects_v2(Bucket=s3.bucket, Prefix="exports/one/")["Contents"]:
        path = local / obj["Key"][len("exports/one/") :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read())
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=local, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert len(json.loads((local / "manifest.json").read_text())) == 4


def test_export_of_a_tampered_archive_fails_and_leaves_nothing(cli, archive, tmp_path: Path) -> None:
    sim, dest = archive
    victim = sorted(dest.rglob("*.json"))[2]
    doc = json.loads(victim.read_text())
    original = dest / doc["files"][0]["key"]
    data = bytearray(original.read_bytes())
    data[100] ^= 0xFF
    original.write_bytes(bytes(data))
    for out in (tmp_path / "x", tmp_path / "x.zip"):
        r = cli("export", "--dest", str(dest), "--out", str(out))
        assert r.exit_code == 1
        assert doc["recording"]["recording_id"] in r.output and "abandoned" in r.output
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".x", "x"))] == []


def test_export_refuses_a_non_empty_target(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    r = cli("export", "--dest", str(dest), "--out", str(tmp_path / "busy"))
    assert r.exit_code == 2 and "not empty" in r.output


class CountingStorage(LocalStorage):
    """A local archive that counts what is read and listed."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []
        self.listed: list[str] = []

    def open_read(self, key: str):  # type: ignore[no-untyped-def]
        self.reads.append(key)
        return super().open_read(key)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        for key in super().list_keys(prefix):
            self.listed.append(key)
            yield key


def test_a_day_is_selected_by_its_folders_not_by_reading_every_sidecar(cli, archive, tmp_path: Path) -> None:
    sim, dest = archive
    started = sorted(r.started for r in sim.plivo)
    first = started[0]
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    sel = Selection(since=since, until=since + timedelta(days=1))
    on_day = {r.id for r in sim.plivo if sel.since <= r.started < sel.until}
    # An unreadable sidecar in another day's folder is that day's problem, not this one's.
    recordings = [p for p in dest.rglob("*.json") if not p.relative_to(dest).parts[0].startswith("_")]
    other = next(p for p in recordings if p.stem not in on_day)
    (other.parent / "broken.json").write_text("{")

    storage = CountingStorage(dest)
    result = verify_archive(storage, sel)  # the archive run recorded its layout in _layouts/
    assert result.recordings == len(on_day) and not result.findings
    day_folder = f"{since:%Y/%m/%d}/"
    archive_reads = [k for k in storage.reads if not k.startswith("_layouts/")]
    assert archive_reads and all(day_folder in k for k in archive_reads)
    assert all(day_folder in k for k in storage.listed if not k.startswith("_layouts/"))
    assert len([k for k in archive_reads if k.endswith(".json")]) == len(on_day)

    out = tmp_path / "day-export"
    exported = run_export(CountingStorage(dest), FolderSink(str(out)), sel)
    assert exported.recordings == len(on_day) and not exported.excluded
    # An archive that records no layout (written before they were recorded) is read whole.
    for marker in (dest / "_layouts").iterdir():
        marker.unlink()
    everything = CountingStorage(dest)
    assert [f.kind for f in verify_archive(everything, sel).findings] == ["unreadable"]
    assert len([k for k in everything.reads if k.endswith(".json")]) == len(sim.plivo) + 1


def test_a_selection_by_date_finds_what_another_layout_filed(
    backfill, cli, use_sim, freeze, tmp_path: Path
) -> None:
    """Archived under a custom --layout (or one that changed over the years), then verified,
    exported and transcoded with today's default settings: a day's selection still finds the
    day's recordings (the destination says which layouts it holds), and one by the minute is
    read whole."""
    freeze(datetime(2024, 6, 1, tzinfo=UTC))
    with Simulator(recordings=30, seed=73) as sim:
        use_sim(sim)
        dest = str(tmp_path / "a")
        monthly = "{provider}/{account}/{started:%Y}/{started:%m}/{recording_id}.{ext}"
        by_minute = "{provider}/{account}/{started:%Y-%m-%d}/{started:%H%M}/{recording_id}.{ext}"
        assert backfill("plivo", dest, "--layout", monthly, until="2024-02-01").exit_code in (0, 1)
        assert backfill("plivo", dest, "--layout", by_minute, since="2024-02-01").exit_code in (0, 1)
        for lo, hi in (("2024-01-05", "2024-01-12"), ("2024-02-03", "2024-02-09")):
            a, b = (
                datetime.fromisoformat(lo).replace(tzinfo=UTC),
                datetime.fromisoformat(hi).replace(tzinfo=UTC),
            )
            want = sum(1 for r in sim.plivo if r.state == "complete" and a <= r.started < b)
            assert want > 0
            v = cli("verify", "--dest", dest, "--since", lo, "--until", hi)
            assert v.exit_code == 0 and f"recordings={want} " in v.output, (lo, v.output)
            e = cli("export", "--dest", dest, "--since", lo, "--until", hi, "--out", str(tmp_path / f"e{lo}"))
            assert e.exit_code == 0, e.output
            assert len(json.loads((tmp_path / f"e{lo}" / "manifest.json").read_text())) == want


def test_verify_finds_altered_missing_and_orphaned(cli, archive, tmp_path: Path) -> None:
    _, dest = archive
    clean = cli("verify", "--dest", str(dest))
    assert clean.exit_code == 0 and "altered=0 missing=0 orphaned=0" in clean.output
    sides = sorted(p for p in dest.rglob("*.json") if not p.relative_to(dest).parts[0].startswith("_"))
    altered = json.loads(sides[0].read_text())
    path = dest / altered["files"][0]["key"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    missing = json.loads(sides[1].read_text())
    (dest / missing["files"][1]["key"]).unlink()
    stray = dest / "plivo" / "stray.wav"
    stray.write_bytes(b"RIFF")
    report = tmp_path / "v.json"
    r = cli("verify", "--dest", str(dest), "--report", str(report))
    assert r.exit_code == 1
    assert "altered=1 missing=1 orphaned=1" in r.output
    findings = {f["kind"]: f for f in json.loads(report.read_text())["findings"]}
    assert findings["altered"]["recording_id"] == altered["recording"]["recording_id"]
    assert findings["altered"]["key"] == altered["files"][0]["key"]
    assert findings["missing"]["key"] == missing["files"][1]["key"]
    assert findings["orphaned"]["key"] == "plivo/stray.wav"
    # A narrowed check looks at what it selects, and says it did not look for orphans.
    narrow = cli("verify", "--dest", str(dest), "--call-id", missing["recording"]["call_id"])
    assert (
        "missing=1" in narrow.output
        and "altered=0" in narrow.output
        and "orphans not checked" in narrow.output
    )


def test_verify_s3(backfill, cli, tmp_path: Path, monkeypatch, s3, use_sim) -> None:
    with Simulator(recordings=3, seed=33) as sim:
        use_sim(sim)
        r0 = backfill("plivo", f"s3://{s3.bucket}/a")
        assert r0.exit_code == 0, r0.output
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    media = next(
        k for k in keys if not k.endswith(".json") and "/_custody/" not in k and "/_layouts/" not in k
    )
    s3.client.put_object(Bucket=s3.bucket, Key=media, Body=b"ID3 replaced")
    r = cli("verify", "--dest", f"s3://{s3.bucket}/a")
    assert r.exit_code == 1 and "altered=1" in r.output and media.removeprefix("a/") in r.output


# --- Object Lock, retention, legal hold ----------------------------------------------------


@pytest.fixture
def lock_bucket(s3) -> str:
    name = s3.bucket + "-lock"
    s3.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_object_lock_retention_counts_from_the_call(
    backfill, cli, tmp_path: Path, monkeypatch, s3, lock_bucket, use_sim
) -> None:
    from datetime import timedelta

    with Simulator(recordings=4, seed=34) as sim:
        use_sim(sim)
        r = backfill(
            "plivo",
            f"s3://{lock_bucket}/a",
            "--object-lock-mode",
            "COMPLIANCE",
            "--retain-days",
            "3650",
            "--legal-hold",
        )
        assert r.exit_code == 0, r.output
        for rec in sim.plivo:
            keys = [
                o["Key"]
                for o in s3.client.list_objects_v2(Bucket=lock_bucket)["Contents"]
                if rec.id in o["Key"]
            ]
            assert len(keys) == 2
            want = rec.started.replace(microsecond=(rec.started.microsecond // 1000) * 1000) + timedelta(
                days=3650
            )
            for key in keys:
                head = s3.client.head_object(Bucket=lock_bucket, Key=key)
                assert head["ObjectLockMode"] == "COMPLIANCE"
                assert abs(head["ObjectLockRetainUntilDate"] - want) < timedelta(seconds=1)
                assert head["ObjectLockLegalHoldStatus"] == "ON"
            side = json.loads(
                s3.client.get_object(Bucket=lock_bucket, Key=next(k for k in keys if k.endswith(".json")))[
                    "Body"
                ].read()
            )
            assert side["protection"]["object_lock_mode"] == "COMPLIANCE" and side["protection"]["legal_hold"]
            assert side["protection"]["retain_until"].startswith(
                (rec.started + timedelta(days=3650)).strftime("%Y-%m-%d")
            )
        # Short retention from calls in 2024 has passed already: stored without it, and said so.
        r2 = backfill(
            "plivo",
            f"s3://{lock_bucket}/b",
            "--object-lock-mode",
            "GOVERNANCE",
            "--retain-days",
            "30",
        )
        assert r2.exit_code == 0 and "stored without retention" in r2.output
        key = next(
            o["Key"]
            for o in s3.client.list_objects_v2(Bucket=lock_bucket, Prefix="b/")["Contents"]
            if "/_custody/" not in o["Key"] and "/_layouts/" not in o["Key"]  # the destination's own
        )
        assert "ObjectLockMode" not in s3.client.head_object(Bucket=lock_bucket, Key=key)
        # Clearing the hold on one call's recording.
        call = sim.plivo[0].doc["call_uuid"]
        r3 = cli("legal-hold", "clear", "--dest", f"s3://{lock_bucket}/a", "--call-id", call, "--json")
        assert r3.exit_code == 0 and "recordings=1 objects=2" in r3.stderr
        doc = json.loads(r3.stdout)
        assert (doc["command"], doc["hold"], doc["recording_ids"]) == (
            "legal-hold",
            "clear",
            [sim.plivo[0].id],
        )
        assert doc["counts"] == {"recordings": 1, "objects": 2, "failed": 0} and doc["exit_code"] == 0
        for o in s3.client.list_objects_v2(Bucket=lock_bucket, Prefix="a/")["Contents"]:
            if "/_custody/" in o["Key"] or "/_layouts/" in o["Key"]:  # the destination's own: no hold
                continue
            status = s3.client.head_object(Bucket=lock_bucket, Key=o["Key"])["ObjectLockLegalHoldStatus"]
            assert status == ("OFF" if sim.plivo[0].id in o["Key"] else "ON")


def test_preflight_refuses_a_bucket_without_object_lock(
    backfill, cli, tmp_path: Path, monkeypatch, s3, use_sim
) -> None:
    with Simulator(recordings=3, seed=35) as sim:
        use_sim(sim)
        r = backfill(
            "plivo",
            f"s3://{s3.bucket}/a",
            "--object-lock-mode",
            "COMPLIANCE",
            "--retain-days",
            "10",
        )
        assert r.exit_code == 2 and "does not have Object Lock enabled" in r.output
        assert sim.stats["plivo.media.requests"] == 0 and sim.stats["plivo.list.requests"] == 0
        local = backfill("plivo", str(tmp_path), "--legal-hold")
        assert local.exit_code == 2 and "need an s3:// destination" in local.output


@pytest.mark.parametrize("command", [["verify"], ["reindex"], ["legal-hold", "set"]])
def test_destination_that_cannot_be_listed_exits_3_with_one_line(
    command: list[str], tmp_path: Path, monkeypatch, s3
) -> None:
    """The bucket answers HeadBucket but ListObjectsV2 fails (AccessDenied, the network drops):
    the command could not proceed (SPEC: 3), not "verify found something" (1), and no
    traceback is printed."""
    from archiver.storage.s3 import S3Storage

    def denied(self: S3Storage, prefix: str = "") -> Iterator[str]:
        raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: AccessDenied")
        yield ""  # pragma: no cover - a generator, as list_keys is

    monkeypatch.setattr(S3Storage, "list_keys", denied)
    monkeypatch.setenv("ARCHIVER_CATALOG", str(tmp_path / "catalog.db"))
    result = CliRunner().invoke(main, [*command, "--dest", f"s3://{s3.bucket}/rec"])
    assert result.exit_code == 3, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"error: cannot list s3://{s3.bucket}/rec/" in result.output
