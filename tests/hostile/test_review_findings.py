"""A hostile review of issue 8 (at 58fd20d) broke these; each test failed there and passes now."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from scripted import Reply
from stand_in import RANGE, plivo_backfill, plivo_record, serve_plivo, wav

T0 = 1706781600000  # 2024-02-01 10:00 UTC


def rows(catalog: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(catalog)) as db:
        return db.execute(sql).fetchall()


def test_reindex_forgets_remembered_failures_and_backfill_never_retries_them(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    plist = plivo_at(scripted)
    records = [plivo_record(scripted, "good"), plivo_record(scripted, "flaky", start_ms=T0 + 60_000)]
    serve_plivo(scripted, plist, records)
    broken = [True]

    def media(req) -> Reply:
        if "flaky" in req.path and broken[0]:
            return Reply(status=404, json={"error": "media not ready"})
        return Reply(body=wav(2.0), headers={"Content-Type": "audio/wav"})

    scripted.route("GET", r"/media/.*", media)
    dest, cat = tmp_path / "a", tmp_path / "cat.db"
    args = ["--config", quick_config(), "backfill", "--provider", "plivo", *RANGE]
    args += ["--dest", str(dest), "--catalog", str(cat)]
    first = cli(*args)
    assert first.exit_code == 1 and "failed=1" in first.output, first.output
    # the window is finished because the failure is remembered
    assert rows(cat, "SELECT state FROM recordings WHERE recording_id='flaky'") == [("failed",)]
    # operator rebuilds the (healthy) catalog, e.g. after restoring the archive or on advice
    ri = cli("reindex", "--dest", str(dest), "--catalog", str(cat))
    assert ri.exit_code == 0, ri.output
    broken[0] = False  # the provider fixes the media
    second = cli(*args)
    # expected: the remembered failure is retried and archived
    assert "archived=1" in second.output, second.output
    assert len(list(dest.rglob("*.json"))) == 2


def _plivo_by_add_time(records):
    """Plivo's list endpoint filtering on add_time (as the real API and archiver sim do)."""
    from datetime import UTC, datetime

    from stand_in import plivo_page

    def parse(text: str) -> datetime:
        return (
            datetime.fromisoformat(text).replace(tzinfo=UTC)
            if "+" not in text
            else datetime.fromisoformat(text)
        )

    def answer(req) -> Reply:
        q = {k: v[0] for k, v in req.query.items()}
        lo, hi = parse(q["add_time__gte"]), parse(q["add_time__lt"])
        chosen = [r for r in records if lo <= parse(r["add_time"]) < hi]
        off = int(q.get("offset", "0"))
        return plivo_page(chosen[off : off + 20], None, off)

    return answer


def test_backfill_forgets_a_plivo_failure_whose_call_started_before_the_range(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """Plivo windows are add_time windows, but the catalog's retry query filters started_at:
    a recording added at 00:05 of a call that started 23:50 the day before fails, is
    remembered, its window is marked finished, and no rerun of the backfill ever retries it."""
    from stand_in import plivo_get_one

    plist = plivo_at(scripted)
    start_ms = 1706745000000  # 2024-01-31 23:50 UTC
    rec = plivo_record(
        scripted, "edge", start_ms=start_ms, seconds=900.0, add_time="2024-02-01 00:05:00.000000+00:00"
    )
    scripted.route("GET", plist, _plivo_by_add_time([rec]))
    scripted.route("GET", plist + r"[^/]+/", plivo_get_one([rec]))
    broken = [True]

    def media(req) -> Reply:
        if broken[0]:
            return Reply(status=404, json={"error": "media not ready"})
        return Reply(body=wav(900.0), headers={"Content-Type": "audio/wav"})

    scripted.route("GET", r"/media/.*", media)
    dest, cat = tmp_path / "a", tmp_path / "cat.db"
    args = ["--config", quick_config(), "backfill", "--provider", "plivo", *RANGE]
    args += ["--dest", str(dest), "--catalog", str(cat)]
    first = cli(*args)
    assert first.exit_code == 1 and "failed=1" in first.output, first.output
    broken[0] = False
    second = cli(*args)
    print(first.output)
    print(second.output)
    print(rows(cat, "SELECT * FROM recordings"), rows(cat, "SELECT * FROM windows"))
    assert "archived=1" in second.output, second.output  # FAILS: listed=0, exit 0


def test_a_secret_the_provider_echoes_in_a_record_reaches_the_sidecar_and_the_export(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """Redaction covers errors, logs, report, catalog, metrics, but the sidecar's
    provider_record only gets redact_urls (user-info + a fixed list of query names): the
    configured secret itself, in a query named auth_token / in a free-text field, stays."""
    import base64

    from stand_in import PLIVO_ID, PLIVO_TOKEN

    plist = plivo_at(scripted)
    basic = base64.b64encode(f"{PLIVO_ID}:{PLIVO_TOKEN}".encode()).decode()
    rec = plivo_record(scripted, "leaky")
    rec["recording_url"] += f"?auth_token={PLIVO_TOKEN}"
    rec["callback_headers"] = f"Authorization: Basic {basic}"
    serve_plivo(scripted, plist, [rec])
    scripted.route("GET", r"/media/.*", Reply(body=wav(2.0), headers={"Content-Type": "audio/wav"}))
    dest = tmp_path / "a"
    r = cli(
        *plivo_backfill(quick_config(), dest),
        "--catalog",
        str(tmp_path / "cat.db"),
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "export"
    e = cli("export", "--dest", str(dest), "--out", str(out))
    assert e.exit_code == 0, e.output
    leaks = []
    for p in [*dest.rglob("*"), *out.rglob("*")]:
        if p.is_file():
            data = p.read_bytes()
            if PLIVO_TOKEN.encode() in data or basic.encode() in data:
                leaks.append(str(p.relative_to(tmp_path)))
    assert not leaks, leaks


def test_a_broken_copy_an_earlier_version_archived_is_not_deleted_at_the_provider(
    cli, tmp_path, scripted, plivo_at, quick_config
) -> None:
    """Before copies were checked to decode, a WAV cut short by a lying Content-Length was
    archived with the header's duration and no probe_error. After the upgrade, deletion must
    check the stored bytes themselves, not trust that sidecar."""
    import hashlib
    import json

    plist = plivo_at(scripted)
    serve_plivo(scripted, plist, [plivo_record(scripted, "cut", seconds=10.0)])
    scripted.route("GET", r"/media/.*", Reply(body=wav(10.0), headers={"Content-Type": "audio/wav"}))
    dest = tmp_path / "a"
    assert (
        cli(
            "--config", quick_config(), "backfill", "--provider", "plivo", *RANGE, "--dest", str(dest)
        ).exit_code
        == 0
    )
    # Make it what the old version stored: the first 3 s of bytes under a header claiming 10 s,
    # and a sidecar whose hash and size match those bytes.
    sidecar = next(dest.rglob("cut.json"))
    doc = json.loads(sidecar.read_text())
    stored = dest / doc["files"][0]["key"]
    cut = stored.read_bytes()[: 44 + 3 * 16000]
    stored.write_bytes(cut)
    doc["files"][0].update(bytes=len(cut), sha256=hashlib.sha256(cut).hexdigest(), probe_error=None)
    sidecar.write_text(json.dumps(doc))
    r = cli(
        "--config",
        quick_config(),
        "fetch",
        "--provider",
        "plivo",
        "cut",
        "--dest",
        str(dest),
        "--delete-after-archive",
    )
    assert not scripted.hits(r".*", "DELETE"), r.output
    assert "does not decode as the recording" in r.output


def test_a_run_aborts_only_uploads_older_than_the_abandoned_age(
    cli, tmp_path, scripted, plivo_at, quick_config, monkeypatch, freeze
) -> None:
    """The run lock lives beside one catalog: another host, another catalog or `archiver
    transcode` may be uploading under the same prefix. A run aborts only uploads begun more
    than `[s3] abandoned_upload_hours` (24) ago. moto reports every upload as begun in 2010,
    so S3 is played here by the scripted server (beside the Plivo API)."""
    from datetime import UTC, datetime, timedelta

    from stand_in import PLIVO_ID, plivo_backfill

    monkeypatch.setenv("AWS_ENDPOINT_URL", scripted.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    now = freeze(datetime(2026, 6, 1, 12, tzinfo=UTC))
    prefix = f"arch/plivo/{PLIVO_ID}/2024/02/01"

    def upload(name: str, upload_id: str, begun: datetime) -> str:
        return (
            f"<Upload><Key>{prefix}/{name}</Key><UploadId>{upload_id}</UploadId>"
            f"<Initiated>{begun.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</Initiated></Upload>"
        )

    listing = (
        '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>bkt</Bucket>'
        "<IsTruncated>false</IsTruncated>"
        + upload("live.flac", "LIVE", now - timedelta(minutes=5))
        + upload("dead.wav", "DEAD", now - timedelta(days=2))
        + "</ListMultipartUploadsResult>"
    ).encode()
    scripted.route("HEAD", r"/bkt/?", Reply())
    scripted.route("GET", r"/bkt/?", Reply(body=listing, headers={"Content-Type": "application/xml"}))
    scripted.route("DELETE", r"/bkt/arch/.*", Reply(status=204))
    scripted.route("PUT", r"/bkt/arch/_layouts/.*", Reply())  # the run records its layout
    serve_plivo(scripted, plivo_at(scripted), [])  # nothing to archive: the run only cleans up
    r = cli(*plivo_backfill(quick_config(), "s3://bkt/arch", "--catalog", str(tmp_path / "c.db")))
    assert r.exit_code == 0, r.output
    aborted = scripted.hits(r"/bkt/arch/.*", "DELETE")
    assert [(r.path, r.query["uploadId"]) for r in aborted] == [(f"/bkt/{prefix}/dead.wav", ["DEAD"])]


def test_catalog_disk_fills_mid_run(cli, tmp_path, scripted, plivo_at, quick_config) -> None:
    """The catalog lives on another disk than the destination (/var/lib vs /srv). When that
    disk fills or goes read-only mid-run, what does the user get?"""
    import subprocess

    import pytest

    mnt = tmp_path / "state"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("no tmpfs")
    try:
        plist = plivo_at(scripted)
        records = [plivo_record(scripted, f"r-{i:02d}", start_ms=T0 + i * 1000) for i in range(8)]
        serve_plivo(scripted, plist, records)
        count = [0]

        def media(req) -> Reply:
            count[0] += 1
            if count[0] == 3:
                subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/filler", "bs=64k"], capture_output=True)
            return Reply(body=wav(1.0), headers={"Content-Type": "audio/wav"})

        scripted.route("GET", r"/media/.*", media)
        report = tmp_path / "report.json"
        r = cli(
            *plivo_backfill(quick_config(), tmp_path / "a"),
            "--catalog",
            str(mnt / "cat.db"),
            "--concurrency",
            "1",
            "--report",
            str(report),
        )
        print(r.exit_code, r.output[-3000:])
        assert r.exit_code == 3, r.output
        assert report.exists()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_on_nfs_the_read_only_staging_lock_fails_every_recording(
    cli, tmp_path, scripted, plivo_at, quick_config, monkeypatch
) -> None:
    """flock(2), NFS details: flock is emulated with fcntl byte-range locks, so "in order to
    place an exclusive lock, the file must be opened for writing" (EBADF otherwise). 58fd20d
    holds the staging lock on an O_RDONLY fd. Emulate NFS's answer: every recording of every
    run fails at 'store', counted as an attempt (EBADF is not a DOWN errno), until all are
    given up after max_failures nights."""
    import errno
    import fcntl
    import os

    real = fcntl.flock

    def nfs_flock(fd, op):
        f = fd if isinstance(fd, int) else fd.fileno()
        if (
            op & fcntl.LOCK_EX
            and (os.fcntl if False else fcntl.fcntl)(f, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        ):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    plist = plivo_at(scripted)
    serve_plivo(scripted, plist, [plivo_record(scripted, f"r-{i}", start_ms=T0 + i) for i in range(3)])
    scripted.route("GET", r"/media/.*", Reply(body=wav(2.0), headers={"Content-Type": "audio/wav"}))
    cat = tmp_path / "cat.db"
    r = cli(
        *plivo_backfill(quick_config(), tmp_path / "a"),
        "--catalog",
        str(cat),
    )
    print(r.output)
    assert r.exit_code == 0, r.output


def test_a_given_up_recording_in_the_overlap_freezes_the_watermark_for_good(
    cli, tmp_path, scripted, plivo_at, quick_config, freeze
) -> None:
    """run_batch skips an id it has seen (the given-up Outcome yielded first), but
    list_window has already tracker.add()-ed it: that window never finishes, so the watermark
    never moves again while the recording is in range, and it stays in range because the
    watermark does not move. Every later run re-lists from the same point."""
    from datetime import UTC, datetime

    plist = plivo_at(scripted)
    serve_plivo(scripted, plist, [plivo_record(scripted, "gone")])  # 2024-02-01 10:00
    scripted.route("GET", r"/media/.*", Reply(status=404, json={"error": "no media"}))
    cat = tmp_path / "cat.db"
    base = [
        "--config",
        quick_config("[archive]", "max_failures = 1"),
        "run",
        "--provider",
        "plivo",
        "--dest",
        str(tmp_path / "a"),
        "--catalog",
        str(cat),
    ]
    freeze(datetime(2024, 2, 1, 10, 30, tzinfo=UTC))
    cli(*base, "--since", "2024-02-01T10:00")
    marks = []
    for day, hour in ((1, 11), (2, 11), (9, 11)):  # hourly cron, then a day, then a week later
        freeze(datetime(2024, 2, day, hour, tzinfo=UTC))
        cli(*base)
        marks.append(rows(cat, "SELECT watermark FROM watermarks")[0][0])
    print(marks)
    assert marks[-1] > "2024-02-08", marks
