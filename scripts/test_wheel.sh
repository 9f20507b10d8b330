#!/usr/bin/env bash
# What a new operator does, from a clean clone of this repository's HEAD: build the wheel,
# install it pipx-style (a venv of its own, dependencies from PyPI), run `archiver --help` and
# `--version`, and print the install size and start-up times. Needs network access to PyPI;
# takes about a minute. tests/integration/test_packaging.py is its quick offline sibling.
#
#   bash scripts/test_wheel.sh          # PYTHON=python3.13 bash scripts/test_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-local --branch "$(git rev-parse --abbrev-ref HEAD)" . "$work/clone"
"$python" -m venv "$work/build"
"$work/build/bin/python" -m pip install --quiet --disable-pip-version-check build 2>&1 |
  { grep -v "^WARNING: Location" || true; } >&2
"$work/build/bin/python" -m build --wheel --outdir "$work/dist" "$work/clone" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/call_recording_archiver-*.whl)
"$python" -m venv "$work/app"   # what `pipx install` makes
"$work/app/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" 2>&1 |
  { grep -v "^WARNING: Location" || true; } >&2
cd "$work"                       # nothing of the clone on sys.path
"$work/app/bin/archiver" --help >/dev/null
"$work/app/bin/archiver" --version
timed() {  # best of 5, in seconds
  local best=999 t
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f %e -o "$work/time" "$@" >/dev/null 2>&1
    t=$(cat "$work/time")
    best=$(echo "$t $best" | awk '{print ($1 < $2) ? $1 : $2}')
  done
  echo "$best"
}
echo "wheel: $(basename "$wheel"), $(du -k "$wheel" | cut -f1) KB"
echo "installed venv: $(du -sm "$work/app" | cut -f1) MB" \
     "(imageio-ffmpeg $(du -sm "$work"/app/lib/python*/site-packages/imageio_ffmpeg | cut -f1) MB," \
     "botocore $(du -sm "$work"/app/lib/python*/site-packages/botocore | cut -f1) MB)"
echo "archiver --help: $(timed "$work/app/bin/archiver" --help) s"
echo "archiver --version: $(timed "$work/app/bin/archiver" --version) s"
