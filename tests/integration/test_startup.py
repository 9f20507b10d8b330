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


COMPLETE = f"""
import json, sys
from archiver.cli import main
try:
    main(sys.argv[1:], prog_name="archiver")
except SystemExit:
    pass
sys.stderr.write(json.dumps([m for m in {HEAVY!r} if m in sys.modules]) + "\\n")
"""


def _archiver(*args: str, **env: str) -> tuple[str, list[str]]:
    """``archiver ARGS`` in a fresh interpreter: its stdout, and the heavy modules it loaded."""
    import os

    proc = subprocess.run(
        [sys.executable, "-c", COMPLETE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    )
    return proc.stdout, json.loads(proc.stderr.splitlines()[-1])


def test_completion_scripts_and_completing_import_no_heavy_library() -> None:
    """`archiver completion SHELL` prints click's script; the shell then runs `archiver` with
    _ARCHIVER_COMPLETE set on every TAB, which must stay as cheap as --help."""
    for shell, marker in (
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef archiver"),
        ("fish", "complete"),
    ):
        script, loaded = _archiver("completion", shell)
        assert marker in script and "_ARCHIVER_COMPLETE" in script and loaded == [], shell
    tab = {"_ARCHIVER_COMPLETE": "bash_complete"}
    words, loaded = _archiver(**tab, COMP_WORDS="archiver back", COMP_CWORD="1")
    assert "plain,backfill" in words.splitlines() and loaded == []
    words, loaded = _archiver(**tab, COMP_WORDS="archiver run --provider ", COMP_CWORD="3")
    assert {"plain,catapult", "plain,plivo"} <= set(words.splitlines()) and loaded == []
    # a destination completes as the shell's folders (not an S3 URL); profiles by name
    words, loaded = _archiver(**tab, COMP_WORDS="archiver verify --dest /tm", COMP_CWORD="3")
    assert words.splitlines() == ["dir,/tm"] and loaded == []
    words, loaded = _archiver(**tab, COMP_WORDS="archiver verify --dest s3://b", COMP_CWORD="3")
    assert words.split() == [] and loaded == []
    words, loaded = _archiver(**tab, COMP_WORDS="archiver transcode --profile o", COMP_CWORD="3")
    assert words.splitlines() == ["plain,opus-16k"] and loaded == []
    words, loaded = _archiver(**tab, COMP_WORDS="archiver backfill --transcode ", COMP_CWORD="3")
    assert {"plain,flac", "plain,mp3-mono-32k"} <= set(words.splitlines()) and loaded == []


def test_the_command_imports_httpx_without_its_command_line_client() -> None:
    """httpx's own CLI (rich, pygments) is loaded by `import httpx` when they are installed:
    not in the `archiver` command's process, which never runs it; a program importing the
    library keeps httpx as it is."""
    script = (
        "import sys, json\n"
        "import archiver.cli, httpx\n"
        "cli = [m for m in ('httpx._main', 'rich', 'pygments') if sys.modules.get(m) is not None]\n"
        "print(json.dumps([cli, callable(httpx.main), hasattr(httpx, 'Client')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [[], True, True]
    library = "import sys, archiver.api, httpx; print(sys.modules.get('httpx._main') is not None)"
    out = subprocess.run([sys.executable, "-c", library], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
