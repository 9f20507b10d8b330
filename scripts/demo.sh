#!/usr/bin/env bash
# On a fresh machine: build .venv, start the bundled provider simulator on loopback, archive
# its Plivo and Catapult recordings into ./demo-archive, print the summary, stop the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_venv.sh
echo "== installing archiver into .venv"
make_venv '.'

work=$(mktemp -d)
# --env-file: the file appears (whole, by rename) only once the simulator is serving.
.venv/bin/archiver sim --recordings 20 --env-file "$work/sim.env" 2>"$work/sim.log" &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  [ -f "$work/sim.env" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/sim.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/sim.env" ] || { echo "the simulator did not start in 30 s" >&2; cat "$work/sim.log" >&2; exit 1; }
# The simulator's own (fake) credentials and loopback URLs:
set -a; . "$work/sim.env"; set +a
# Real Catapult allows 1 request/s per endpoint; the simulator does not enforce it, so the demo
# goes faster. Leave this unset against the real API.
export CATAPULT_REQUESTS_PER_SECOND=20
# The demo keeps its catalog here, not in your ~/.local/state.
export ARCHIVER_CATALOG="$PWD/demo-catalog.db"

status=0
for provider in plivo catapult; do
  echo "== archiver backfill --provider $provider --since 2024-01-01 --until 2024-03-01 --dest ./demo-archive"
  rc=0
  .venv/bin/archiver backfill --provider "$provider" --since 2024-01-01 --until 2024-03-01 \
    --dest ./demo-archive || rc=$?
  # Exit 1 = some recordings failed; the simulator marks a few Catapult recordings as 'error'
  # on purpose, and the report names them. Anything else is a real problem.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then status=$rc; fi
done
echo "== ./demo-archive now holds $(find demo-archive -name '*.json' -path '*/20*' | wc -l) sidecars and" \
     "$(find demo-archive \( -name '*.wav' -o -name '*.mp3' \) | wc -l) recordings, for example:"
find demo-archive -name '*.json' -path '*/20*' | sort | head -3
echo "== run it again: finished windows are not even listed, nothing is downloaded twice"
.venv/bin/archiver -q backfill --provider plivo --since 2024-01-01 --until 2024-03-01 --dest ./demo-archive
echo "== verify the archive: every file re-hashed against its sidecar"
.venv/bin/archiver verify --dest ./demo-archive || status=$?
exit "$status"
