#!/usr/bin/env bash
# deps.sh: installs or checks everything `make test` needs, on a fresh
# Debian machine (as root, or with sudo) or a developer's. `make test` runs
# it first; it is idempotent and takes a few seconds when all is there.
#
#   Debian packages  chromium, docker-compose, apache2-utils (htpasswd),
#                    curl, openssl; make, go, java, mvn, node, npm, python3
#                    are checked (the machine brings them)
#   Go               the modules of go.mod; staticcheck, deadcode and
#                    kubeconform at the versions below, into .tools/bin
#   npm              npm ci in tests/js, webclient, tests/browser,
#                    compat/spring/js when package-lock.json changed
#   PyPI             tests/py/requirements.txt; the Kubernetes JSON schemas
#                    (kubernetes-validate ships them), linked as
#                    .tools/kubernetes-json-schema
#   Maven            fetched by mvn itself in compat/spring/test.sh
#
# Go tools and schemas are built once per version in ~/.cache/stompbus
# (XDG_CACHE_HOME) and linked into .tools, so a new clone reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

STATICCHECK_VERSION=v0.8.2  # honnef.co/go/tools
DEADCODE_VERSION=v0.52.0    # golang.org/x/tools
KUBECONFORM_VERSION=v0.8.0
KUBERNETES_VALIDATE_VERSION=1.37.0 # PyPI; ships the schemas of Kubernetes 1.25 to 1.37

say() { echo "deps: $*"; }

# --- Debian packages --------------------------------------------------------
want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need chromium chromium
need docker-compose docker-compose
need htpasswd apache2-utils
need curl curl
need openssl openssl
need nginx nginx; [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || want+=(libnginx-mod-stream) # server/nginx_test.go
need java openjdk-17-jdk-headless
need mvn maven
need node nodejs
need npm npm
# the fault suite (tests/faults): namespaces, firewall rules, syscall traces
need ip iproute2
need iptables iptables
need strace strace
if ((${#want[@]})); then
	say "apt-get install ${want[*]}"
	sudo=""
	if [[ $(id -u) != 0 ]]; then sudo=sudo; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
for tool in make go python3 git; do
	command -v "$tool" >/dev/null || { echo "deps: $tool is missing; install it first" >&2; exit 1; }
done

# --- Go ---------------------------------------------------------------------
go mod download
cache=${XDG_CACHE_HOME:-$HOME/.cache}/stompbus
mkdir -p .tools/bin "$cache"
# gotool NAME PACKAGE VERSION: go install PACKAGE@VERSION once per version
# and link it as .tools/bin/NAME.
gotool() {
	local name=$1 pkg=$2 ver=$3 dir="$cache/go/$1@$3"
	if [[ ! -x $dir/$name ]]; then
		say "go install $pkg@$ver"
		# -buildvcs and -mod from the environment do not apply to a tool's
		# own module.
		GOFLAGS= GOBIN="$dir.tmp" go install "$pkg@$ver"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	fi
	ln -sfn "$dir/$name" ".tools/bin/$name"
}
gotool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
gotool deadcode golang.org/x/tools/cmd/deadcode "$DEADCODE_VERSION"
gotool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"

# --- Python -----------------------------------------------------------------
pyreq=tests/py/requirements.txt
if ! python3 - "$pyreq" <<'PY'; then
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
	say "pip install -r $pyreq"
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$pyreq"
fi
schemas="$cache/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -d $schemas/kubernetes_validate/kubernetes-json-schema ]]; then
	say "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION (the Kubernetes JSON schemas)"
	rm -rf "$schemas.tmp"
	python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
		--target "$schemas.tmp" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
	rm -rf "$schemas" && mv "$schemas.tmp" "$schemas"
fi
ln -sfn "$schemas/kubernetes_validate/kubernetes-json-schema" .tools/kubernetes-json-schema

# --- npm --------------------------------------------------------------------
# npm ci when node_modules was not made from this package-lock.json.
for d in tests/js webclient tests/browser compat/spring/js; do
	[[ -f $d/package-lock.json ]] || continue
	sum=$(sha256sum "$d/package-lock.json" | cut -d' ' -f1)
	if [[ $(cat "$d/node_modules/.stompbus-lock" 2>/dev/null) != "$sum" ]]; then
		say "npm ci in $d"
		(cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
		echo "$sum" >"$d/node_modules/.stompbus-lock"
	fi
done
say "ready ($(cd "$root" && ls .tools/bin | tr '\n' ' '))"
