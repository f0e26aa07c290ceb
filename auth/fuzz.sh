#!/usr/bin/env bash
# Security checks: the auth, session and server tests under the race
# detector, then each security fuzz target for a bounded time (default 20s
# each; first argument overrides). New crashers are kept by go test under
# <pkg>/testdata/fuzz/<target>/ and then run as regression seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
go test -race ./auth/... ./session/... ./server/...
for target in session:FuzzSessionFrames session:FuzzSessionStream server:FuzzWSMessagesText; do
	pkg="${target%%:*}" fn="${target##*:}"
	echo "fuzz $pkg $fn for ${secs}s"
	go test "./$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "${secs}s"
done
