# Sourced by demo.sh and test.sh: find Python >= 3.11 and build .venv with the given extras.
# Everything comes from PyPI (ffmpeg too, via imageio-ffmpeg); no system package is needed.
set -euo pipefail

pick_python() {
  for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: archiver needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

make_venv() {  # $1: pip install target, e.g. '.' or '.[test]'
  local py
  py=$(pick_python)
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  # pip's and setuptools' chatter goes to a log, shown only when the install fails.
  # A .venv made before the rename has the same code installed as "archiver" (a name that is
  # another project's on PyPI): it goes, so one distribution owns the package and the command.
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
         { ! .venv/bin/python -m pip show archiver >/dev/null 2>&1 ||
           .venv/bin/python -m pip uninstall --disable-pip-version-check -y archiver; } &&
         .venv/bin/python -m pip install --disable-pip-version-check -e "$1"; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "error: installing $1 into .venv failed (log above, also in .venv/pip.log)" >&2
    return 1
  fi
}
