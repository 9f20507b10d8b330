"""An export as a BagIt 1.0 bag (RFC 8493), around any export Sink.

The export itself (files, sidecars, manifests, ``CUSTODY.json``, ``SHA256SUMS``) is the bag's
payload under ``data/``, byte for byte what a plain export holds; the bag's own tag files sit
at its root: ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` (every payload file),
the viewer ``index.html`` and ``tagmanifest-sha256.txt`` (every other tag file). The format is
a handful of small text files, so they are written here rather than through a dependency;
bagit-python validates them in the tests.

``bag-info.txt`` is derived from the payload's own ``CUSTODY.json``, as written: its
``created_at`` date is the Bagging-Date, its SHA-256 the External-Identifier (the export id),
its selection and options the ``Export-*`` fields. So the bag can say nothing the custody
record does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from archiver import __version__
from archiver.compliance.export import Sink
from archiver.errors import ExportError

PAYLOAD = "data/"
CUSTODY = "CUSTODY.json"
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


class BagSink:
    """Writes an export as a bag into ``inner`` (a folder, a zip, a bucket prefix), under
    ``root`` (``""``, or ``name/`` inside a zip: a serialized bag holds one base folder).
    ``write`` puts an export file in the payload, ``write_tag`` beside it; ``commit`` adds
    the manifests and ``bag-info.txt`` and commits ``inner``."""

    payload_dir = PAYLOAD

    def __init__(
        self,
        inner: Sink,
        *,
        root: str = "",
        source_organization: str | None = None,
        mask: Callable[[str | None], str | None] | None = None,
    ) -> None:
        self.inner = inner
        self.root = root
        self.source_organization = source_organization
        self.mask = mask
        self.payload: list[tuple[str, str, int]] = []  # (sha256, path in the bag, bytes)
        self.tags: list[tuple[str, str]] = []
        self.custody: bytes | None = None

    def write(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        if key == CUSTODY:
            chunks = self._keep_custody(chunks)
        digest, size = self.inner.write(self.root + PAYLOAD + key, chunks)
        self.payload.append((digest, PAYLOAD + key, size))
        return digest, size

    def write_tag(self, name: str, chunks: Iterable[bytes]) -> tuple[str, int]:
        """A tag file at the bag's root (listed in ``tagmanifest-sha256.txt``)."""
        digest, size = self.inner.write(self.root + name, chunks)
        self.tags.append((digest, name))
        return digest, size

    def commit(self) -> None:
        try:
            self.write_tag("bagit.txt", [BAGIT_TXT])
            self.write_tag("bag-info.txt", [self._bag_info()])
            self.write_tag("manifest-sha256.txt", [manifest((d, p) for d, p, _ in self.payload)])
            self.inner.write(self.root + "tagmanifest-sha256.txt", [manifest(self.tags)])
        except BaseException:
            self.inner.abort()
            raise
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()

    def _keep_custody(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        kept = bytearray()
        for chunk in chunks:
            kept += chunk
            yield chunk
        self.custody = bytes(kept)

    def _bag_info(self) -> bytes:
        custody_sha = next((d for d, p, _ in self.payload if p == PAYLOAD + CUSTODY), None)
        if self.custody is None or custody_sha is None:
            raise ExportError("the export wrote no CUSTODY.json: no bag-info.txt can describe it")
        return bag_info(
            json.loads(self.custody),
            export_id=custody_sha,
            octets=sum(size for _, _, size in self.payload),
            streams=len(self.payload),
            source_organization=self.source_organization,
            mask=self.mask,
        )


def bag_info(
    custody: dict[str, Any],
    *,
    export_id: str,
    octets: int,
    streams: int,
    source_organization: str | None,
    mask: Callable[[str | None], str | None] | None = None,
) -> bytes:
    """``bag-info.txt`` for an export whose ``CUSTODY.json`` is ``custody`` (SHA-256
    ``export_id``) and whose payload is ``streams`` files of ``octets`` bytes in all."""
    selection = dict(custody.get("selection") or {})
    if mask is not None and isinstance(selection.get("number"), str):
        selection["number"] = mask(selection["number"])
    chosen = " ".join(f"{k}={v}" for k, v in selection.items() if v is not None)
    options = " ".join(f"{k}={json.dumps(v)}" for k, v in (custody.get("options") or {}).items())
    counts = custody.get("counts") or {}
    fields = [
        ("Source-Organization", source_organization),
        ("Bagging-Date", str(custody.get("created_at") or "")[:10]),
        ("Payload-Oxum", f"{octets}.{streams}"),
        ("External-Identifier", export_id),
        (
            "External-Description",
            f"{counts.get('recordings', 0)} call recordings ({counts.get('files', 0)} files, "
            f"{counts.get('excluded', 0)} sidecars left out) exported from {custody.get('source')}; "
            "data/CUSTODY.json is the chain-of-custody record, its SHA-256 the External-Identifier",
        ),
        ("Bag-Software-Agent", f"archiver {__version__}"),
        ("Export-Selection", chosen or "all"),
        ("Export-Options", options),
    ]
    return "".join(f"{label}: {one_line(value)}\n" for label, value in fields if value).encode("utf-8")


_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def one_line(value: str) -> str:
    """A tag value on one line: a line break in a configured name must not forge a field."""
    return _BREAKS.sub(" ", value).strip()


def manifest(entries: Iterable[tuple[str, str]]) -> bytes:
    """``checksum path`` lines; CR, LF and ``%`` in a path percent-encoded (RFC 8493 2.1.3)."""
    return "".join(f"{digest}  {encode_path(path)}\n" for digest, path in entries).encode("utf-8")


def encode_path(path: str) -> str:
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def bag_root(out: str) -> str:
    """The base folder of a bag serialized as ``out`` (a ``.zip``): its name without the
    extension, as RFC 8493 section 4 asks, reduced to a safe key part."""
    name = out.rstrip("/").rsplit("/", 1)[-1]
    stem = name[:-4] if name.lower().endswith(".zip") else name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".").replace("..", "_")
    return (name or "bag") + "/"
