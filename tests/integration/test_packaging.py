"""The wheel an operator installs: built from the tracked files alone (a clean clone), it
carries the package data, py.typed and the `archiver` command, and runs from its own venv.

Offline and quick (~10 s): setuptools comes from the test extras (no build isolation) and the
fresh venv gets the wheel without dependencies, which it finds through a path entry to this
venv's site-packages. scripts/test_wheel.sh does the full pipx-style install from PyPI."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_wheel_from_a_clean_clone_installs_isolated_and_runs(tmp_path: Path) -> None:
    import pytest

    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    pytest.importorskip("pip", reason="builds with this venv's pip (a uv-made venv has none)")
    clone = tmp_path / "clone"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (ROOT / name).is_file():  # tracked and still there (a file being deleted is not)
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name, follow_symlinks=False)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."],
        cwd=clone,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (clone / "dist").glob("call_recording_archiver-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(zf.read(info).decode())
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
        shipped = zf.read("archiver/data/archiver.example.toml").decode()
    assert {"archiver/py.typed", "archiver/__main__.py"} <= names
    assert not any(n.startswith(("tests/", "scripts/", "contrib/")) for n in names)
    assert shipped == (ROOT / "config" / "archiver.example.toml").read_text()
    assert meta["Name"] == "call-recording-archiver" and meta["License-Expression"]
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert "archiver = archiver.cli:main" in entry_points

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies, from this venv; its own copy of archiver is not on that path (an
    # editable install's finder runs only from .pth files of a site dir).
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exe = fresh / "bin" / "archiver"
    helped = subprocess.run(
        [exe, "--help"], capture_output=True, text=True, check=True, env=env, cwd=tmp_path
    )
    assert "Usage: archiver" in helped.stdout
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True, env=env)
    assert version.stdout.startswith("archiver ") and "(call-recording-archiver)" in version.stdout
    where = subprocess.run(
        [python, "-c", "import archiver; print(archiver.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(str(site)), where  # the wheel's copy, not the working tree's
