"""The one Storage conformance suite: every backend must pass it (local folder, S3 on moto)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.errors import StorageError, UnsafeKeyError
from archiver.storage import Storage, open_storage
from archiver.storage.s3 import S3Options


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        store = open_storage(str(tmp_path / "dest"))
    else:
        s3 = request.getfixturevalue("s3")
        # A small multipart threshold so the suite exercises multipart uploads too.
        store = open_storage(f"s3://{s3.bucket}/pre/fix", S3Options(multipart_threshold_mb=5, part_size_mb=5))
    store.check()
    yield store
    store.close()


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return str(path)


def read(storage: Storage, key: str) -> bytes:
    with storage.open_read(key) as fh:  # type: ignore[attr-defined]
        return fh.read()


def test_put_file_then_read_back(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(1000)
    storage.put_file(
        "a/b/c.wav", write(tmp_path, data), content_type="audio/wav", sha256=hashlib.sha256(data).hexdigest()
    )
    assert storage.exists("a/b/c.wav")
    assert read(storage, "a/b/c.wav") == data


def test_large_file_multipart(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(11 * 1024 * 1024)
    storage.put_file(
        "big.wav", write(tmp_path, data), content_type="audio/wav", sha256=hashlib.sha256(data).hexdigest()
    )
    assert hashlib.sha256(read(storage, "big.wav")).digest() == hashlib.sha256(data).digest()


def test_workers_store_files_at_once(storage: Storage, tmp_path: Path) -> None:
    # S3: the workers share one transfer manager (small objects and a multipart one together).
    from concurrent.futures import ThreadPoolExecutor

    sizes = [1000 * (i + 1) for i in range(7)] + [6 * 1024 * 1024]
    datas = [os.urandom(n) for n in sizes]
    paths = []
    for i, data in enumerate(datas):
        path = tmp_path / f"w{i}.bin"
        path.write_bytes(data)
        paths.append(str(path))

    def put(i: int) -> None:
        sha = hashlib.sha256(datas[i]).hexdigest()
        storage.put_file(f"w/{i}.wav", paths[i], content_type="audio/wav", sha256=sha)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(len(datas))))
    assert [read(storage, f"w/{i}.wav") == data for i, data in enumerate(datas)] == [True] * len(datas)


def test_put_bytes_overwrites_atomically(storage: Storage) -> None:
    storage.put_bytes("x/side.json", b"{}", content_type="application/json")
    storage.put_bytes("x/side.json", b'{"v": 2}', content_type="application/json")
    assert read(storage, "x/side.json") == b'{"v": 2}'


def test_exists_and_delete(storage: Storage) -> None:
    assert not storage.exists("nope.json")
    storage.put_bytes("k.json", b"1", content_type="application/json")
    storage.delete("k.json")
    assert not storage.exists("k.json")
    storage.delete("k.json")  # already gone: no error


def test_list_keys_only_shows_finished_objects(storage: Storage) -> None:
    for key in ("p/1.json", "p/2.wav", "q/3.json"):
        storage.put_bytes(key, b"x", content_type="application/octet-stream")
    Path(storage.staging_dir(), ".fetch-inflight.part").write_bytes(b"partial")
    assert sorted(storage.list_keys()) == ["p/1.json", "p/2.wav", "q/3.json"]
    assert sorted(storage.list_keys("p/")) == ["p/1.json", "p/2.wav"]


def test_reading_a_missing_key_is_a_storage_error(storage: Storage) -> None:
    with pytest.raises(StorageError):
        read(storage, "missing.wav")


def test_local_refuses_keys_outside_root(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "root"))
    with pytest.raises(UnsafeKeyError):
        store.put_bytes("../escape.json", b"x", content_type="application/json")
    assert not (tmp_path / "escape.json").exists()


def test_local_write_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "root"))
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "a" / "dir.json").mkdir()  # a directory where the file should go
    with pytest.raises(StorageError):
        store.put_bytes("a/dir.json", b"x", content_type="application/json")
    assert [p.name for p in (tmp_path / "root" / "a").iterdir()] == ["dir.json"]


def test_s3_objects_carry_sha256_checksum_and_no_acl(s3: object, tmp_path: Path) -> None:
    bucket = s3.bucket  # type: ignore[attr-defined]
    client = s3.client  # type: ignore[attr-defined]
    store = open_storage(f"s3://{bucket}/arch")
    data = b"RIFF" + os.urandom(500)
    digest = hashlib.sha256(data).hexdigest()
    store.put_file("r.wav", write(tmp_path, data), content_type="audio/wav", sha256=digest)
    head = client.head_object(Bucket=bucket, Key="arch/r.wav", ChecksumMode="ENABLED")
    assert head["ContentType"] == "audio/wav"
    assert head["Metadata"]["sha256"] == digest
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    grants = client.get_object_acl(Bucket=bucket, Key="arch/r.wav")["Grants"]
    assert all("AllUsers" not in str(g.get("Grantee")) for g in grants)


def test_s3_checks_the_bytes_against_the_hash_taken_while_downloading(s3: object, tmp_path: Path) -> None:
    """A recording's PUT carries the SHA-256 its download computed (the sidecar's), not one
    botocore computes again from the staged file: so S3 checks the bytes it receives against
    what was hashed when they arrived, end to end (a staged file altered on the way is
    refused, BadDigest). moto stores the checksum it is sent without checking it, so what is
    asserted here is the checksum sent: it is the caller's, even where it does not match the
    file (which only a real S3 refuses)."""
    bucket = s3.bucket  # type: ignore[attr-defined]
    client = s3.client  # type: ignore[attr-defined]
    store = open_storage(f"s3://{bucket}/arch")
    data = b"RIFF" + os.urandom(500)
    hashed = hashlib.sha256(data + b"as it arrived").hexdigest()  # not the staged bytes' hash
    store.put_file("r.wav", write(tmp_path, data), content_type="audio/wav", sha256=hashed)
    head = client.head_object(Bucket=bucket, Key="arch/r.wav", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(hashed)).decode()
    store.close()


def test_s3_storage_class_and_encryption(s3: object, tmp_path: Path) -> None:
    bucket = s3.bucket  # type: ignore[attr-defined]
    store = open_storage(f"s3://{bucket}/x", S3Options(storage_class="STANDARD_IA", sse="AES256"))
    store.put_file(
        "r.wav",
        write(tmp_path, b"RIFF1234"),
        content_type="audio/wav",
        sha256=hashlib.sha256(b"RIFF1234").hexdigest(),
    )
    head = s3.client.head_object(Bucket=bucket, Key="x/r.wav")  # type: ignore[attr-defined]
    assert head["StorageClass"] == "STANDARD_IA" and head["ServerSideEncryption"] == "AES256"


def test_s3_missing_bucket_is_a_config_error(s3: object) -> None:
    from archiver.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        open_storage("s3://no-such-bucket-here/x").check()


def test_recover_removes_only_what_dead_runs_left(storage: Storage, tmp_path: Path) -> None:
    import subprocess
    import sys

    from archiver.storage.staging import Staging

    parent = Path(storage.staging_dir()).parent
    # A run that died: another process made its staging folder and a download, then ended
    # (its lock went with it, whatever pid it had).
    script = (
        "import sys; from archiver.storage.staging import Staging; s = Staging(sys.argv[1]); "
        "open(s.path() + '/fetch-x.part', 'wb').write(b'half'); print(s.token)"
    )
    dead = subprocess.run(
        [sys.executable, "-c", script, str(parent)], capture_output=True, text=True, check=True
    )
    dead_dir = parent / dead.stdout.strip()
    assert (dead_dir / "fetch-x.part").exists()
    # A live run (another Staging in this very process: a second run on the same machine).
    other = Staging(parent)
    live = Path(other.path()) / "fetch-y.part"
    live.write_bytes(b"y")
    mine = Path(storage.staging_dir()) / "fetch-z.part"
    mine.write_bytes(b"z")
    if hasattr(storage, "bucket"):  # S3: an upload begun by a run that died
        client = storage._client  # type: ignore[attr-defined]
        key = storage.prefix + "plivo/MA1/2024/01/01/r.wav"  # type: ignore[attr-defined]
        client.create_multipart_upload(Bucket=storage.bucket, Key=key)  # type: ignore[attr-defined]
        assert client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads")  # type: ignore[attr-defined]
    else:
        # A recording named like a temp file of the old scheme is a recording: kept.
        folder = Path(storage.url) / "plivo" / "MA1"
        folder.mkdir(parents=True)
        (folder / f".archiver-tmp-{dead.returncode}-zz").write_bytes(b"data")
    cleaned = storage.recover("plivo/MA1/")
    assert cleaned >= 1
    assert not dead_dir.exists() and not (parent / f"{dead_dir.name}.lock").exists()
    assert live.exists() and mine.exists()
    if hasattr(storage, "bucket"):
        assert not client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads")  # type: ignore[attr-defined]
    else:
        assert len(list((Path(storage.url) / "plivo" / "MA1").iterdir())) == 1
    other.close()
    assert not live.parent.exists()  # a run's close removes its own folder, and only that
    assert mine.exists()


def test_a_new_folder_is_durable_in_its_parent_before_anything_claims_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSIX: a file's name is durable once its folder is fsynced, and a new folder's name
    once *its* parent is. Writing into a fresh day's folder (plivo/MA.../2024/01/31/, every
    level new) and syncing fsyncs each of them, root included, so a crash after the catalog
    says "archived" cannot lose the folder."""
    from archiver.storage import local

    synced: list[Path] = []
    real = local._fsync_dir
    monkeypatch.setattr(local, "_fsync_dir", lambda path: (synced.append(Path(path)), real(path)))
    store = local.LocalStorage(tmp_path / "dest")
    store.check()
    synced.clear()
    store.put_bytes("plivo/MA1/2024/01/31/r.json", b"{}", content_type="application/json")
    store.sync()
    root = (tmp_path / "dest").resolve()
    for folder in ("", "plivo", "plivo/MA1", "plivo/MA1/2024", "plivo/MA1/2024/01", "plivo/MA1/2024/01/31"):
        assert root / folder in synced, (folder, synced)
    synced.clear()
    assert store.put_new("_custody/000000000001.jsonl", b"x\n", content_type="text/plain")
    assert root in synced and root / "_custody" in synced
    store.close()
