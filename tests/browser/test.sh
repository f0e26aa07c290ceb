#!/usr/bin/env bash
# Runs the browser tests of the stompbus page: Debian's Chromium driven by
# playwright-core under node's test runner, against the real broker built
# from ./cmd/broker. Idempotent: installs what is missing, then runs.
#
#   tests/browser/test.sh                 everything
#   tests/browser/test.sh test/live.test.mjs   one file
#
# Screenshots land in tests/browser/out/ (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "== installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version

echo "== npm ci (tests/browser)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

echo "== go build ./cmd/broker"
mkdir -p "$here/out"
(cd "$root" && go build -o "$here/out/broker" ./cmd/broker)
export STOMPBUS_BROKER="$here/out/broker"

echo "== browser tests"
cd "$here"
if [[ $# -eq 0 ]]; then set -- test/; fi
exec node --test --test-concurrency=1 "$@"
