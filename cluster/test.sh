#!/usr/bin/env bash
# cluster/test.sh: the CI checks of the cluster (issue 4). Idempotent;
# installs Debian's docker-compose when missing (validating the compose file
# needs no Docker engine). About one minute on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

go vet ./cluster/... ./router/... ./presence/...
unformatted=$(gofmt -l cluster router presence)
if [ -n "$unformatted" ]; then echo "gofmt: $unformatted" >&2; exit 1; fi
go test -race -count=1 ./cluster/... ./router/... ./presence/...

if ! command -v docker-compose >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f docker-compose.yml config -q
echo "docker-compose.yml: valid"

# deploy/nginx.conf syntax, when nginx and its stream module are installed
# (the compose service names are replaced by loopback for the check).
mod=/usr/lib/nginx/modules/ngx_stream_module.so
if command -v nginx >/dev/null 2>&1 && [ -f "$mod" ]; then
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    { echo "load_module $mod;"; sed 's/broker[123]:/127.0.0.1:/g' deploy/nginx.conf; } >"$tmp"
    nginx -t -q -c "$tmp"
    echo "deploy/nginx.conf: valid"
fi
for s in scripts/cluster-demo.sh scripts/cluster-bench.sh; do bash -n "$s"; done
