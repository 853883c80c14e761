#!/usr/bin/env bash
# Builds the two stand-in base images the tests build the Dockerfile on, into buildah storage
# of the test cache. Called by provision.sh (which holds the provisioning lock); safe to run
# again: it only rebuilds when an input changed.
#
#   base-images.sh CACHE_DIR
#
# Why stand-ins: the Dockerfile's bases (node:24-bookworm-slim and
# gcr.io/distroless/nodejs24-debian12:nonroot) live in container registries, which the test
# machines cannot reach. The stand-ins are made of what they can reach: Debian bookworm
# packages (mmdebstrap, apt), the `node` binary of the npm `node@24` package (the project's
# devDependency, the same official Node build the public images ship) and npm from the npm
# registry. They keep the paths and users the Dockerfile relies on:
#   build:   Debian bookworm minbase, node and npm in /usr/local/bin, runs as root.
#   runtime: glibc, libstdc++, CA bundle, tzdata, /nodejs/bin/node, user 65532 (nonroot),
#            /home/nonroot, no shell, no package manager.
set -euo pipefail

CACHE=${1:?usage: base-images.sh CACHE_DIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUITE=${STANDIN_DEBIAN_SUITE:-bookworm}
MIRROR=${STANDIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NPM_VERSION=${STANDIN_NPM_VERSION:-11.21.3}
NODE_BIN="$ROOT/node_modules/node/bin/node"
STORE="$CACHE/containers"
BUILD_REF=localhost/cert-rotator-standin/node:24-bookworm-slim
RUNTIME_REF=localhost/cert-rotator-standin/distroless-nodejs24:nonroot

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
say() { printf '[provision] %s\n' "$*"; }
bah() { buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver overlay "$@"; }

[ -x "$NODE_BIN" ] || { echo "base-images: $NODE_BIN missing: run npm ci first (the node@24 devDependency provides it)" >&2; exit 1; }
NODE_VERSION=$("$NODE_BIN" --version)
case "$NODE_VERSION" in v24.*) ;; *) echo "base-images: $NODE_BIN is $NODE_VERSION, expected Node 24" >&2; exit 1 ;; esac

# Everything that decides the images' contents; a change of any of them rebuilds both.
STAMP=$( { cat "${BASH_SOURCE[0]}"; echo "$SUITE $MIRROR npm@$NPM_VERSION"; sha256sum "$NODE_BIN"; } | sha256sum | cut -c1-16)
if [ -f "$STORE/.bases.stamp" ] && [ "$(cat "$STORE/.bases.stamp")" = "$STAMP" ] &&
  bah inspect --type image "$BUILD_REF" >/dev/null 2>&1 && bah inspect --type image "$RUNTIME_REF" >/dev/null 2>&1; then
  say "stand-in base images (node $NODE_VERSION, npm $NPM_VERSION, Debian $SUITE): cached"
  exit 0
fi

T0=$(now)
# The images these replace, removed once the new ones are tagged (an image a build still uses
# as a layer cache stays).
old_ids=$(for r in "$BUILD_REF" "$RUNTIME_REF"; do bah inspect --type image --format '{{.FromImageID}}' "$r" 2>/dev/null || true; done)
say "stand-in base images (node $NODE_VERSION, npm $NPM_VERSION, Debian $SUITE): building (about 1 min, then cached)"
mkdir -p "$STORE"
WORK=$(mktemp -d "$CACHE/base-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# npm, from the npm registry (the package is published with its dependencies bundled).
(cd "$WORK" && npm pack "npm@$NPM_VERSION" --silent >/dev/null)
NPM_TGZ="$WORK/npm-$NPM_VERSION.tgz"
[ -f "$NPM_TGZ" ] || { echo "base-images: npm pack npm@$NPM_VERSION produced no $NPM_TGZ" >&2; exit 1; }

# base-files, tzdata and the CA certificates, unpacked without their maintainer scripts (which need debconf
# and a shell); the bundle that update-ca-certificates would write is assembled below.
(cd "$WORK" && apt-get download -qq base-files tzdata ca-certificates >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null
  (cd "$WORK" && apt-get download -qq base-files tzdata ca-certificates >/dev/null)
}

# --- build stage: Debian minbase + node + npm, like node:24-bookworm-slim ---------------
t=$(now)
mmdebstrap --quiet --mode=root --variant=minbase --skip=output/dev \
  --customize-hook="install -D -m 0755 '$NODE_BIN' \"\$1/usr/local/bin/node\"" \
  --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$NPM_TGZ' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1 --no-same-owner" \
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
  "$SUITE" "$WORK/build.tar" "deb $MIRROR $SUITE main"
c=$(bah from scratch)
bah add --quiet "$c" "$WORK/build.tar" / >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="${NODE_VERSION#v}" --cmd node \
  --label org.opencontainers.image.description="cert-rotator test stand-in for node:24-bookworm-slim" "$c"
bah commit --quiet --rm "$c" "$BUILD_REF" >/dev/null
say "  build base $BUILD_REF in $(took "$t")"

# --- runtime stage: like gcr.io/distroless/nodejs24-debian12:nonroot ------------------
t=$(now)
# Only the shared libraries node links against; `extract` unpacks them (and what they depend
# on, nothing else) without running any package script (so its hooks are extract hooks).
mmdebstrap --quiet --mode=root --variant=extract --skip=output/dev \
  --include=netbase,libc6,libgcc-s1,libstdc++6 \
  --extract-hook="for d in '$WORK'/base-files_*.deb '$WORK'/tzdata_*.deb '$WORK'/ca-certificates_*.deb; do dpkg-deb -x \"\$d\" \"\$1\"; done" \
  "$SUITE" "$WORK/runtime" "deb $MIRROR $SUITE main"
R="$WORK/runtime"
rm -rf "$R"/etc/apt "$R"/var/lib/apt "$R"/var/cache/apt "$R"/var/lib/dpkg "$R"/var/log/* "$R"/usr/sbin/update-ca-certificates "$R"/usr/share/doc "$R"/usr/share/man
mkdir -p "$R/etc/ssl/certs"
cat "$R"/usr/share/ca-certificates/mozilla/*.crt >"$R/etc/ssl/certs/ca-certificates.crt"
install -D -m 0755 "$NODE_BIN" "$R/nodejs/bin/node"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$R/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$R/etc/group"
# As in distroless: /etc/hosts before DNS (glibc's default without this file is the reverse).
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
install -d -m 0700 -o 65532 -g 65532 "$R/home/nonroot"
chmod 1777 "$R/tmp"
# No shell, no interpreter but node: a stand-in with more than the real image would hide a
# dependency on it.
extra=$(cd "$R" && find . -path ./nodejs/bin/node -prune -o \( -type f -o -type l \) -path '*bin/*' -print)
[ -z "$extra" ] || { echo "base-images: the runtime stand-in would contain programs: $extra" >&2; exit 1; }
tar -C "$R" --numeric-owner -cf "$WORK/runtime.tar" .
c=$(bah from scratch)
bah add --quiet "$c" "$WORK/runtime.tar" / >/dev/null
bah config --user 65532:65532 --workingdir /home/nonroot \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --entrypoint '["/nodejs/bin/node"]' \
  --label org.opencontainers.image.description="cert-rotator test stand-in for gcr.io/distroless/nodejs24-debian12:nonroot" "$c"
bah commit --quiet --rm "$c" "$RUNTIME_REF" >/dev/null
say "  runtime base $RUNTIME_REF in $(took "$t")"

for id in $old_ids; do bah rmi "$id" >/dev/null 2>&1 || true; done
echo "$STAMP" >"$STORE/.bases.stamp"
say "stand-in base images: built in $(took "$T0")"
