"""S3 as destination. The only module that imports boto3.

Uploads go through s3transfer: multipart above a threshold with bounded part size and
concurrency, a SHA-256 checksum S3 verifies on every part, and an aborted multipart upload
on failure, so no half-written object is ever visible. Credentials and endpoint come from
boto3's own chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``...). No ACL is ever set.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import S3Transfer, TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from archiver.errors import ConfigError, StorageError, StorageUnavailable
from archiver.models import Protection
from archiver.storage.base import S3Options
from archiver.storage.staging import Staging, reap

log = logging.getLogger(__name__)
MB = 1024 * 1024
STAGING = "archiver-staging"  # under the system temp folder, shared by every run on this machine
# Answers that say S3 itself is unusable, not this object: stop the run rather than fail
# recording after recording (archiver.errors.StorageError.destination_down).
DOWN_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "NoSuchBucket",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ServiceUnavailable",
        "SlowDown",
        "InternalError",
        "503",
        "500",
        "403",
        "QuotaExceeded",
    }
)
# S3's bucket naming rules (general purpose buckets), checked before boto3 answers with a regex.
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"bad S3 destination {url!r}: use s3://bucket[/prefix]")
    if not BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc or IPV4.fullmatch(parts.netloc):
        raise ConfigError(
            f"bad S3 destination {url!r}: {parts.netloc!r} is not a bucket name (3-63 of a-z, "
            "0-9, '.' and '-', starting and ending with a letter or digit)"
        )
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Storage:
    """Objects under ``s3://bucket/prefix/``."""

    def __init__(self, url: str, options: S3Options, *, pool_size: int = 16) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.options = options
        self._client = boto3.session.Session().client(
            "s3",
            config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=pool_size),
        )
        # One transfer manager for the destination's life, shared by the workers: boto3's
        # client.upload_file makes one per call (its thread pools started and joined for
        # every recording). Its threads bound the parts in flight over all uploads at once:
        # as many as before, max_concurrency per worker (pool_size is two per worker).
        workers = max(1, pool_size // 2)
        self._transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold_mb * MB,
            multipart_chunksize=options.part_size_mb * MB,
            max_concurrency=options.max_concurrency * workers,
            use_threads=True,
        )
        self._uploads = S3Transfer(self._client, self._transfer)
        self._staging = Staging(self._staging_parent())

    @staticmethod
    def _staging_parent() -> str:
        return f"{tempfile.gettempdir()}/{STAGING}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _extra(self, content_type: str, protection: Protection | None = None) -> dict[str, Any]:
        # Always a SHA-256 checksum: S3 verifies it, and Object Lock puts require one.
        extra: dict[str, Any] = {"ContentType": content_type, "ChecksumAlgorithm": "SHA256"}
        if protection is not None:
            if protection.mode and protection.retain_until:
                extra["ObjectLockMode"] = protection.mode
                extra["ObjectLockRetainUntilDate"] = protection.retain_until
            if protection.legal_hold:
                extra["ObjectLockLegalHoldStatus"] = "ON"
        if self.options.storage_class:
            extra["StorageClass"] = self.options.storage_class
        if self.options.sse:
            extra["ServerSideEncryption"] = self.options.sse
        if self.options.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return extra

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise ConfigError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            ) from None
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket"):
                raise ConfigError(f"S3 bucket {self.bucket!r} does not exist") from None
            raise StorageUnavailable(f"cannot use S3 bucket {self.bucket!r}: {code}") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach S3 for bucket {self.bucket!r}: {exc}") from None
        if self.options.object_lock_mode or self.options.legal_hold:
            self._preflight_lock()

    def bucket_facts(self) -> dict[str, Any]:
        """Object Lock, versioning, encryption and public access block of the bucket (None
        where S3 has no such configuration or refuses to tell)."""
        facts: dict[str, Any] = {}
        calls = {
            "object_lock": lambda: self._client.get_object_lock_configuration(Bucket=self.bucket)[
                "ObjectLockConfiguration"
            ].get("ObjectLockEnabled"),
            "versioning": lambda: self._client.get_bucket_versioning(Bucket=self.bucket).get("Status"),
            "encryption": lambda: self._client.get_bucket_encryption(Bucket=self.bucket)[
                "ServerSideEncryptionConfiguration"
            ]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
            "public_access_block": lambda: all(
                self._client.get_public_access_block(Bucket=self.bucket)[
                    "PublicAccessBlockConfiguration"
                ].values()
            ),
        }
        for name, call in calls.items():
            try:
                facts[name] = call()
            except (ClientError, BotoCoreError, KeyError, IndexError):
                facts[name] = None
        return facts

    def _preflight_lock(self) -> None:
        facts = self.bucket_facts()
        if facts["object_lock"] != "Enabled":
            raise ConfigError(
                f"S3 bucket {self.bucket!r} does not have Object Lock enabled, so --object-lock-mode/"
                "--legal-hold cannot protect anything: use a bucket created with Object Lock"
            )
        if facts["versioning"] != "Enabled":
            raise ConfigError(
                f"S3 bucket {self.bucket!r} has versioning {facts['versioning'] or 'off'}; "
                "Object Lock needs it enabled"
            )

    def set_legal_hold(self, key: str, on: bool) -> None:
        try:
            self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=self._key(key), LegalHold={"Status": "ON" if on else "OFF"}
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot {'set' if on else 'clear'} the legal hold of {key}: {exc}") from None

    def staging_dir(self) -> str:
        """This run's own folder for files in flight (see archiver.storage.staging)."""
        try:
            return self._staging.path()
        except OSError as exc:
            raise StorageError(
                f"cannot make a staging folder under {self._staging_parent()}: {exc.strerror or exc}",
                destination_down=True,
            ) from None

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot check {key}: {_code(exc)}", destination_down=_down(exc)) from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot check {key}: {exc}", destination_down=_down(exc)) from None

    def put_file(
        self, key: str, path: str, *, content_type: str, sha256: str, protection: Protection | None = None
    ) -> None:
        extra = self._extra(content_type, protection)
        extra["Metadata"] = {"sha256": sha256}
        try:
            if os.path.getsize(path) < self._transfer.multipart_threshold:
                # One PUT carrying the SHA-256 taken while downloading, not one botocore takes
                # again from the staged file: S3 refuses (BadDigest) bytes that are not the
                # ones hashed, end to end, and nothing reads the file twice. (A multipart
                # upload has a checksum per part: S3 has no whole-object SHA-256 for those.)
                extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode()
                with open(path, "rb") as body:
                    self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, **extra)
            else:
                self._uploads.upload_file(path, self.bucket, self._key(key), extra_args=extra)
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            raise StorageError(f"upload of {key} failed: {exc}", destination_down=_down(exc)) from None
        except OSError as exc:  # the staged file itself (ours, not the destination's)
            raise StorageError(f"upload of {key} failed: cannot read {path}: {exc.strerror or exc}") from None

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **self._extra(content_type, protection)
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"upload of {key} failed: {exc}", destination_down=_down(exc)) from None

    def put_new(
        self, key: str, data: bytes, *, content_type: str, protection: Protection | None = None
    ) -> bool:
        """A conditional put (``If-None-Match: *``): False when an object is at ``key``
        already. Without explicit ``protection`` the bucket's default retention applies."""
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                IfNoneMatch="*",
                **self._extra(content_type, protection),
            )
        except ClientError as exc:
            # 412: there is one; 409: a concurrent conditional write won the race.
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise StorageError(f"upload of {key} failed: {_code(exc)}", destination_down=_down(exc)) from None
        except BotoCoreError as exc:
            raise StorageError(f"upload of {key} failed: {exc}", destination_down=True) from None
        return True

    def lock_state(self, key: str) -> Protection | None:
        """The object's retention and legal hold now (head_object); None when it has neither."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"cannot check {key}: {_code(exc)}", destination_down=_down(exc)) from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot check {key}: {exc}", destination_down=True) from None
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus") == "ON"
        if until is None and not hold:
            return None
        return Protection(head.get("ObjectLockMode"), until, hold)

    def open_read(self, key: str) -> BinaryIO:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot read {key}: {exc}", destination_down=_down(exc)) from None
        return body

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot delete {key}: {exc}", destination_down=_down(exc)) from None

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list s3://{self.bucket}/{self.prefix}{prefix}: {exc}") from None

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        """The "folders" (common prefixes at ``/``) right under ``prefix``, sorted."""
        paginator = self._client.get_paginator("list_objects_v2")
        base = self._key(prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    yield common["Prefix"][len(base) :].rstrip("/")
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list s3://{self.bucket}/{base}: {exc}") from None

    def recover(self, scope_prefix: str, initiated_before: datetime | None = None) -> int:
        """Abort multipart uploads left under ``scope_prefix`` by runs that died (the run lock
        guarantees no live run of this scope is uploading), and remove their local staging
        folders. Returns how many things were cleaned."""
        cleaned = reap(self._staging_parent())
        started = initiated_before or datetime.now(UTC)
        try:
            paginator = self._client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(scope_prefix)):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < started:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        cleaned += 1
        except ClientError as exc:
            # Least-privilege credentials may lack s3:ListBucketMultipartUploads: the run can
            # go on; only the clean-up of a dead run's unfinished uploads is skipped.
            log.warning(
                "cannot list unfinished multipart uploads in s3://%s/%s (%s): not cleaning up after "
                "interrupted runs (a lifecycle rule AbortIncompleteMultipartUpload does it too)",
                self.bucket,
                self._key(scope_prefix),
                _code(exc),
            )
        except BotoCoreError as exc:
            raise StorageUnavailable(f"cannot reach S3 for bucket {self.bucket!r}: {exc}") from None
        return cleaned

    def close(self) -> None:
        """Stop the transfer manager's threads, remove this run's own staging folder."""
        try:
            self._uploads.__exit__(None, None, None)  # S3Transfer's shutdown: waits for none left
        finally:
            self._staging.close()


def _down(exc: Exception) -> bool:
    """Whether an S3 failure says the destination is unusable rather than one object."""
    if isinstance(exc, BotoCoreError):
        return True  # no connection, timeouts, credentials: nothing will get through
    if isinstance(exc, ClientError):
        return _code(exc) in DOWN_CODES
    text = str(exc)
    # s3transfer wraps the ClientError's text: "An error occurred (AccessDenied) when ...".
    return any(f"({code})" in text for code in DOWN_CODES) or "Could not connect" in text


def _code(exc: ClientError) -> str:
    error: Mapping[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", "unknown"))
