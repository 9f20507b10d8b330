#!/usr/bin/env bash
# Build the image and use it as an operator would, against the simulator on this host:
#   --version as uid 10001; `run` into a folder on a named volume (the catalog lives there
#   too); a second `run` that resumes from the watermark the volume kept; `docker stop` of a
#   command that installs no SIGTERM handler of its own exits 143 (tini as PID 1), not 137;
#   a read-only root file system.
# Needs a docker daemon and the base image (BASE=... picks another, e.g. a mirror's); builds
# with --network host (pip reaches PyPI). Not part of .ci/run, which has no docker daemon.
#
#   bash scripts/docker_check.sh            # TAG=call-recording-archiver:check by default
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${TAG:-call-recording-archiver:check}
build=(docker build --network host -t "$tag")
if [ -n "${BASE:-}" ]; then build+=(--build-arg "BASE=$BASE"); fi
"${build[@]}" . >/dev/null
echo "built $tag: $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"

. scripts/_venv.sh
make_venv .  # the simulator runs from this checkout, on the host
work=$(mktemp -d)
volume=archiver-check-$$
sim=
stalled=
cleanup() {
  for pid in $sim $stalled; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  docker rm -f "archiver-check-$$" >/dev/null 2>&1 || true
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/archiver sim --recordings 12 --seed 5 --faults stall:media --stall-seconds 5 \
  --env-file "$work/stalled.env" >/dev/null 2>&1 &
stalled=$!
.venv/bin/archiver sim --recordings 12 --seed 5 --env-file "$work/sim.env" >/dev/null 2>&1 &
sim=$!
until [ -f "$work/sim.env" ] && [ -f "$work/stalled.env" ]; do sleep 0.1; done
# docker --env-file reads KEY=value literally: no `export`.
sed -e 's/^export //' "$work/sim.env" >"$work/docker.env"
sed -e 's/^export //' "$work/stalled.env" >"$work/stalled-docker.env"
echo PLIVO_REQUESTS_PER_SECOND=200 >>"$work/docker.env"

fail() { echo "FAIL: $*" >&2; exit 1; }
run() { docker run --rm --network host --env-file "$work/docker.env" -v "$volume:/var/lib/archiver" "$tag" "$@"; }

start=$(date +%s%N)
docker run --rm "$tag" --version >"$work/version"
echo "docker run --rm IMAGE --version in $((($(date +%s%N) - start) / 1000000)) ms: $(head -1 "$work/version")"
[ "$(docker run --rm --entrypoint id "$tag" -u)" = 10001 ] || fail "the image does not run as uid 10001"

run -q run --provider plivo --since 2024-01-01 --dest /var/lib/archiver/out >"$work/first" 2>&1 ||
  fail "first run: $(cat "$work/first")"
grep -q "archived=" "$work/first" || fail "first run printed no summary: $(cat "$work/first")"
echo "first run:  $(tail -1 "$work/first")"
run -q run --provider plivo --dest /var/lib/archiver/out >"$work/second" 2>&1 ||
  fail "second run: $(cat "$work/second")"
grep -q "archived=0 " "$work/second" || fail "second run did not resume: $(cat "$work/second")"
echo "second run: $(tail -1 "$work/second")"

# A read-only root: archiver writes only to the volume, the destination and $TMPDIR.
docker run --rm --network host --read-only --tmpfs /tmp --env-file "$work/docker.env" \
  -v "$volume:/var/lib/archiver" "$tag" -q verify --dest /var/lib/archiver/out >"$work/verify" 2>&1 ||
  fail "verify on a read-only root: $(cat "$work/verify")"
echo "verify, read-only root: $(tail -1 "$work/verify")"

# docker stop: SIGTERM to PID 1, which tini hands to archiver. A backfill whose downloads
# stall (5 s each, then retried) stops after the ones in flight: exit 143, well before
# docker's SIGKILL (137).
docker run -d --name "archiver-check-$$" --network host --env-file "$work/stalled-docker.env" \
  -v "$volume:/var/lib/archiver" "$tag" -v backfill --provider plivo --since 2024-01-01 --until 2024-03-01 \
  --dest /var/lib/archiver/stalled >/dev/null
until docker logs "archiver-check-$$" 2>&1 | grep -q "retrying download"; do sleep 0.2; done
docker stop -t 60 "archiver-check-$$" >/dev/null  # the stalled downloads end within 5 s
code=$(docker inspect -f '{{.State.ExitCode}}' "archiver-check-$$")
[ "$code" = 143 ] || fail "docker stop: exit $code, not 143: $(docker logs "archiver-check-$$" 2>&1 | tail -5)"
echo "docker stop: exit $code"
echo "ok"
