#!/usr/bin/env bash
# validate.sh: checks the manifests of deploy/kubernetes offline (make
# test-k8s runs it, after scripts/deps.sh put the tools in .tools):
#  1. kubeconform -strict against the Kubernetes JSON schemas that the PyPI
#     package kubernetes-validate ships (no schema is fetched from the
#     network). The ServiceMonitor is a Prometheus Operator resource
#     (a CRD) whose schema no installed package ships: it is skipped by
#     kind (-skip ServiceMonitor), every other kind must have a schema.
#  2. the broker's arguments in each manifest are flags the broker takes:
#     broker ARGS -print-config must accept them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.33.0}
src=$root/.tools/kubernetes-json-schema/v$K8S_VERSION-local-strict
if [[ ! -d $src ]]; then
	echo "validate.sh: no schemas for Kubernetes $K8S_VERSION in $src (run scripts/deps.sh)" >&2
	exit 1
fi
# kubernetes-validate's schemas refer to their shared definitions as
# /api/_definitions.json (its own resolver maps that); kubeconform needs a
# reference it can open: the definitions file by its file:// path.
schemas=$root/.tools/k8s-schemas
out=$schemas/v$K8S_VERSION-standalone-strict
if [[ ! -f $out/_definitions.json ]]; then
	python3 - "$src" "$out" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst + ".tmp", exist_ok=True)
ref = '"file://' + os.path.join(os.path.abspath(dst), "_definitions.json") + "#"
for name in os.listdir(src):
    if name.endswith(".json"):
        with open(os.path.join(src, name)) as f:
            text = f.read()
        with open(os.path.join(dst + ".tmp", name), "w") as f:
            f.write(text.replace('"/api/_definitions.json#', ref))
os.rename(dst + ".tmp", dst)
PY
fi
kubeconform=$root/.tools/bin/kubeconform
"$kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
	-schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
	-skip ServiceMonitor \
	"$here"/*.yaml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/broker" ./cmd/broker)
for f in "$here"/*.yaml; do
	# The container's args: "- -flag=value" lines; $(VAR) is what
	# Kubernetes fills in from the pod.
	mapfile -t args < <(sed -n 's/^ *- \(-[a-z][a-z-]*=.*\)$/\1/p' "$f" | sed 's/\$([A-Z_]*)/x/g')
	if ((${#args[@]} == 0)); then
		echo "validate.sh: $f: no broker arguments found" >&2
		exit 1
	fi
	if ! out=$("$tmp/broker" "${args[@]}" -print-config 2>&1); then
		echo "validate.sh: $f: the broker refuses its arguments:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "$(basename "$f"): ${#args[@]} broker arguments accepted"
done
