#!/usr/bin/env bash
# Spring compatibility tests (issue 8): Spring's WebSocketStompClient against
# stompbus, and a Spring Boot app whose STOMP broker relay points at stompbus.
#
# Builds the broker, installs the stomp.js agent's npm packages when missing,
# and runs the Maven module (dependencies cached in ~/.m2 as usual). When a
# test fails, prints the STOMP frames exchanged (target/frames/*.txt).
# STOMPBUS_BROKER=/path/to/broker skips the build. Extra arguments go to
# mvn (e.g. -Dtest=RelayTest).
# Needs: go, Java 17 (JDK), Maven 3.8+, Node 20+ with npm. Idempotent.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in go java mvn node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "compat/spring/test.sh: $tool is missing (apt-get install -y maven openjdk-17-jdk-headless nodejs npm)" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stompbus-spring.XXXXXX")
trap 'rm -rf "$work"' EXIT
broker=${STOMPBUS_BROKER:-}
if [ -z "$broker" ]; then
  echo "compat/spring: building the broker"
  (cd "$root" && go build -o "$work/broker" ./cmd/broker)
  broker=$work/broker
fi

if [ ! -f "$here/js/node_modules/@stomp/stompjs/package.json" ] || [ ! -f "$here/js/node_modules/ws/package.json" ]; then
  echo "compat/spring: installing the stomp.js agent (npm ci)"
  (cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$here"
rm -rf target/frames
status=0
mvn -B -ntp test -Dstompbus.broker="$broker" "$@" || status=$?
if [ "$status" -ne 0 ]; then
  if compgen -G "target/frames/*.txt" >/dev/null; then
    for f in target/frames/*.txt; do
      echo
      echo "######## $f"
      cat "$f"
    done
  fi
  echo "compat/spring: FAILED (frames above; Spring logs in target/surefire-reports/*-output.txt)" >&2
fi
# A skipped test did not pass: name each one and why.
if compgen -G "target/surefire-reports/TEST-*.xml" >/dev/null; then
  python3 - target/surefire-reports/TEST-*.xml <<'PY' || true
import sys, xml.etree.ElementTree as ET
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        for s in case.findall("skipped"):
            why = s.get("message") or (s.text or "").strip().splitlines()[0] if (s.get("message") or s.text) else "?"
            print("compat/spring: SKIPPED (not passed) %s.%s: %s" % (case.get("classname"), case.get("name"), why))
PY
fi
exit "$status"
