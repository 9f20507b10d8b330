"""`archiver --help` (and shell completion, which imports the same modules) stays cheap: it
loads none of the heavy libraries; they are imported at the seam that needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("boto3", "botocore", "s3transfer", "httpx", "httpcore", "mutagen", "rich")

SCRIPT = f"""
import json, sys
from click.testing import CliRunner
from archiver.cli import main
runner = CliRunner()
texts = [runner.invoke(main, ["--help"]).output]
for name in sorted(main.commands):
    texts.append(runner.invoke(main, [name, "--help"]).output)
print(json.dumps({{"loaded": [m for m in {HEAVY!r} if m in sys.modules], "helps": len(texts),
                  "ok": all("Usage:" in t for t in texts)}}))
"""


def test_help_imports_no_heavy_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    found = json.loads(out.splitlines()[-1])
    assert found["ok"] and found["helps"] > 10
    assert found["loaded"] == [], f"`archiver --help` imported {found['loaded']}"


def test_config_imports_no_provider_or_encoder() -> None:
    """The core does not import the edges: config owns the providers' and profiles' settings."""
    script = (
        "import sys, archiver.config; "
        "print(' '.join(m for m in sys.modules if m.startswith(('archiver.providers', 'archiver.media'))))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
