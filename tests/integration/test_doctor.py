from __future__ import annotations

import json
from pathlib import Path

from archiver.sim import Simulator


def test_doctor_all_good_then_names_what_is_wrong(cli, tmp_path: Path, monkeypatch, use_sim) -> None:
    with Simulator(recordings=2, seed=51) as sim:
        use_sim(sim)
        (tmp_path / "a").mkdir()  # a destination not there yet is a warning (tested below)
        ok = cli("doctor", "--dest", str(tmp_path / "a"))
        assert ok.exit_code == 0, ok.output
        assert "OK    provider catapult" in ok.output and "OK    provider plivo" in ok.output
        assert "OK    ffmpeg" in ok.output and "OK    catalog" in ok.output
        assert list((tmp_path / "a").iterdir()) == []  # the probe object is gone again
        monkeypatch.setenv("PLIVO_AUTH_TOKEN", "not-the-token")
        bad = cli("doctor", "--provider", "plivo", "--dest", str(tmp_path / "a"))
        assert bad.exit_code == 1
        assert "FAIL  provider plivo" in bad.output and "fix: check the credentials" in bad.output
        assert "not-the-token" not in bad.output
    monkeypatch.setenv("ARCHIVER_FFMPEG", str(tmp_path / "nope"))
    r = cli("doctor", "--provider", "plivo", "--dest", str(tmp_path / "a"))
    assert "WARN  ffmpeg" in r.output and "FAIL  provider plivo" in r.output  # the simulator is gone


def test_doctor_on_s3_reports_bucket_protection(cli, s3, monkeypatch) -> None:
    r = cli("doctor", "--dest", f"s3://{s3.bucket}/x")
    assert r.exit_code == 0
    assert (
        "WARN  destination" in r.output
        and "public access" in r.output
        and "Object Lock not enabled" in r.output
    )
    s3.client.put_public_access_block(
        Bucket=s3.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.client.put_bucket_encryption(
        Bucket=s3.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    r2 = cli("doctor", "--dest", f"s3://{s3.bucket}/x")
    assert "public access is blocked" in r2.output and "default encryption AES256" in r2.output
    assert not s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents")  # probe removed


def test_doctor_names_a_destination_folder_that_is_not_there_and_makes_none(cli, tmp_path) -> None:
    typo = tmp_path / "archvie" / "2024"
    r = cli("doctor", "--dest", str(typo), "--catalog", str(tmp_path / "c.db"), "--json")
    (found,) = [c for c in json.loads(r.stdout)["checks"] if c["check"] == f"destination {typo}"]
    assert (
        found["level"] == "warn"
        and f"does not exist yet: the first run creates it (in {tmp_path})" in found["message"]
    )
    assert not (tmp_path / "archvie").exists()
