#!/usr/bin/env bash
# Run the suite against the lowest versions pyproject.toml declares (`>=` bounds of the
# dependencies and of the test extras), on the lowest Python it declares (3.11), so a bound
# we advertise is a bound we have seen pass. Not part of .ci/run (it resolves and installs a
# second environment: about two minutes more); run it whenever a bound in pyproject.toml
# changes, and before a release:
#
#   bash scripts/test_minimums.sh            # the whole suite
#   bash scripts/test_minimums.sh -q -x tests/unit    # extra arguments go to pytest
#
# uv's `--resolution lowest-direct` picks the lowest allowed version of every direct
# dependency (their own dependencies resolve as usual). uv comes from PyPI into
# .venv-min-tools when it is not on PATH. The side environment is .venv-min (left in place for
# a look; delete it at will). PYTHON picks the interpreter (default: python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  if [ ! -x .venv-min-tools/bin/uv ]; then
    "$python" -m venv .venv-min-tools
    .venv-min-tools/bin/python -m pip install --quiet --disable-pip-version-check uv
  fi
  uv=.venv-min-tools/bin/uv
fi

rm -rf .venv-min
"$uv" venv --quiet --python "$python" .venv-min
"$uv" pip install --quiet --python .venv-min/bin/python --resolution lowest-direct -e '.[test]'
echo "== lowest declared versions:"
"$uv" pip list --python .venv-min/bin/python 2>/dev/null |
  grep -i -E '^(httpx|boto3|mutagen|click|imageio-ffmpeg|rich|distributed|pytest|moto|bagit) '
exec .venv-min/bin/python -m pytest -p no:cacheprovider "$@"
