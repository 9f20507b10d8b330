#!/usr/bin/env bash
# Build .venv with the test extras and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
make_venv '.[test]'
exec .venv/bin/python -m pytest "$@"
