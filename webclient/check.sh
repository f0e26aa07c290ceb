#!/usr/bin/env bash
# Fails when the committed dist/ is not what build.sh makes from src/ and
# package-lock.json (someone edited src/ or bumped a package without
# rebuilding, or edited a generated file by hand). CI runs it.
set -euo pipefail
cd "$(dirname "$0")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
./build.sh "$tmp/dist"
if ! diff -r dist "$tmp/dist" >"$tmp/diff"; then
  echo "webclient/dist is out of date: run webclient/build.sh and commit dist/" >&2
  head -c 4000 "$tmp/diff" >&2
  echo >&2
  exit 1
fi
echo "webclient/dist is up to date"
