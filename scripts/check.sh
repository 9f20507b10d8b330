#!/usr/bin/env bash
# Lint and type-check (ruff E,F,I,B,UP,SIM and mypy), after scripts/test.sh built .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check archiver tests scripts
.venv/bin/mypy archiver
