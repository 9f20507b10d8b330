#!/bin/sh
# The loop users write today, for scripts/bench.py: one `curl` and one `aws s3 cp` per file,
# four at a time through xargs.
#
#   AWS=/path/to/aws sh scripts/loop_curl_awscli.sh LIST.tsv s3://BUCKET/PREFIX
#
# LIST.tsv: "URL KEY" per line. curl gets -L because some providers (Plivo here) redirect
# media to another host. Endpoint and credentials come from the AWS_* environment.
set -eu
list=$1
dest=${2%/}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export AWS="${AWS:-aws}" TMPDIR_LOOP="$tmp" DEST="$dest"
xargs -P 4 -L 1 sh -c '
  f="$TMPDIR_LOOP/$(basename "$1")"
  curl -sfL -o "$f" "$0" && "$AWS" s3 cp --quiet "$f" "$DEST/$1" && rm -f "$f"
' < "$list"
