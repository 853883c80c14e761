#!/usr/bin/env bash
# Builds the contents of the container image into OUTDIR: the compiled controller (dist/),
# package.json, package-lock.json and the production dependencies only.
#
#   scripts/build-image.sh OUTDIR
#
# The Dockerfile's build stage runs exactly this, and test/integration/chart-image.test.ts
# runs it too and starts the result, so what ships is what is tested. Needs the project's
# dev dependencies installed (npm ci) for the TypeScript compiler, and npm with access to
# the npm registry (or its cache) for the production install.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: scripts/build-image.sh OUTDIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
case "$OUT" in
  "$ROOT" | "$ROOT"/src | "$ROOT"/src/*) echo "build-image: OUTDIR must not be the source tree" >&2; exit 2 ;;
esac

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
say() { printf '[build-image] %s\n' "$*"; }
T0=$(now)

# 1. dist/: compiled straight into OUTDIR, so the work tree's dist/ is not touched.
rm -rf "$OUT/dist" "$OUT/node_modules"
t=$(now)
node "$ROOT/node_modules/typescript/bin/tsc" -p "$ROOT/tsconfig.build.json" --outDir "$OUT/dist"
say "compiled src/ to $OUT/dist in $(took "$t")"

# 2. The manifest and lock file: `npm ci` installs exactly the locked versions.
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$OUT/"

# 3. Production dependencies only. No install scripts: none of them needs one (the only
#    package with one is the `node` devDependency), and a build should not run them.
t=$(now)
(cd "$OUT" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
say "installed production dependencies in $(took "$t") ($(ls "$OUT/node_modules" | wc -l) top-level entries)"

# A dev dependency in the output would mean the lock file or the flags are wrong.
for dev in typescript vitest @biomejs node; do
  if [ -e "$OUT/node_modules/$dev" ]; then
    echo "build-image: dev dependency $dev found in $OUT/node_modules" >&2
    exit 1
  fi
done
say "done in $(took "$T0"): $(du -sh "$OUT" | cut -f1) in $OUT"
