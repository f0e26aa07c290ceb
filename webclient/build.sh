#!/usr/bin/env bash
# Rebuilds the page's generated files (dist/) from src/ and the npm packages
# pinned in package-lock.json: app.js is src/main.js bundled with
# @stomp/stompjs by esbuild, app.css the minified style sheet,
# stompbus-resume.js the resume module alone (src/resume.js), index.html and
# favicon.svg are copied. dist/ is committed and embedded in the Go binary,
# so building the broker needs no Node.
#
#   webclient/build.sh            rebuild dist/
#   webclient/build.sh OUTDIR     build into OUTDIR instead (check.sh uses it)
#   SKIP_NPM_CI=1 webclient/build.sh   reuse node_modules as they are
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-dist}"

if [[ "${SKIP_NPM_CI:-}" != 1 ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

mkdir -p "$out"
rm -f "$out"/app.js "$out"/app.css "$out"/index.html "$out"/favicon.svg "$out"/*.txt "$out"/stompbus-resume.js
esbuild=node_modules/.bin/esbuild
common=(--bundle --minify --target=es2020,chrome100,firefox100,safari15 --charset=utf8 --log-level=warning)
"$esbuild" src/main.js "${common[@]}" --format=esm --legal-comments=eof --outfile="$out/app.js"
"$esbuild" src/style.css "${common[@]}" --outfile="$out/app.css"
# the resume module on its own, for applications (and the npm package in
# webclient/resume/): @stomp/stompjs stays the application's own import
"$esbuild" src/resume.js "${common[@]}" --format=esm --external:@stomp/stompjs --outfile="$out/stompbus-resume.js"
cp src/index.html src/favicon.svg "$out"/
# the licence of the bundled third-party code travels with it
cp node_modules/@stomp/stompjs/LICENSE "$out"/THIRD_PARTY_STOMPJS_LICENSE.txt
