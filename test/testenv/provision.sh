#!/usr/bin/env bash
# Provision the real programs the integration tests run against.
#
# Idempotent and cached: every artefact lands in $CERT_ROTATOR_CACHE (outside the
# repo, default ~/.cache/cert-rotator) under a directory named after its version,
# so a second run only checks that the files are there. Nothing is downloaded
# except through the Go module proxy and Debian's apt repositories.
#
# Prints one line per step: what was built or reused and how long it took (and, on a
# first build, roughly how long it will take, with a line every 30 s while it runs).
# Writes $CACHE/env.sh, which the test harness sources for the binary paths.
#
# Usage: provision.sh [all|control-plane|node]
#   all (default)   everything the tests need.
#   control-plane   only etcd, kube-apiserver and kube-controller-manager (what
#                   `cert-rotator demo` needs); writes $CACHE/control-plane.env only.
#   node            the control plane plus the real node of the e2e tests: kubelet,
#                   kube-scheduler, kube-proxy, containerd/runc/CNI plugins (apt-get, needs
#                   root) and the pause and testbox images; writes $CACHE/node.env too.
set -euo pipefail

TARGET="${1:-all}"
case "$TARGET" in
  all | control-plane | node) ;;
  *) echo "usage: provision.sh [all|control-plane|node]" >&2; exit 2 ;;
esac

K8S_VERSION="${K8S_VERSION:-v1.36.3}"      # k8s.io/kubernetes release line
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
PEBBLE_VERSION="${PEBBLE_VERSION:-v2.10.1}" # newer than Debian's: serves ARI and profiles
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"

CACHE="${CERT_ROTATOR_CACHE:-$HOME/.cache/cert-rotator}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/src"
# One lock so parallel invocations (two vitest workers, a developer and CI) never
# build into the same directory at once.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
  printf '[provision] waiting for another provisioning run to finish (lock %s)\n' "$CACHE/.lock"
  flock 9
fi

export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
say() { printf '[provision] %s\n' "$*"; }

# go_build NAME VERSION_STAMP MODULE_DIR PKG...
# Builds PKGs from a throw-away module in $CACHE/src/NAME-VERSION whose go.mod the
# caller wrote; the binaries go to $BIN. A stamp file records the version built.
stamp_ok() { [ -f "$BIN/.$1.stamp" ] && [ "$(cat "$BIN/.$1.stamp")" = "$2" ]; }

need_go() {
  command -v go >/dev/null && return
  echo "provision: building $1 needs Go >= 1.26 on PATH (https://go.dev/dl/), or set KUBEBUILDER_ASSETS to a directory with etcd, kube-apiserver and kube-controller-manager" >&2
  exit 1
}

# build_module NAME VERSION DIR ESTIMATE PKG...  (ESTIMATE: what a first build takes on 2 cores)
build_module() {
  local name=$1 version=$2 dir=$3 estimate=$4; shift 4
  local t0; t0=$(now)
  if stamp_ok "$name" "$version"; then
    say "$name $version: cached"
    return
  fi
  need_go "$name"
  say "$name $version: building (first time only; about $estimate on 2 cores, then cached)"
  # A heartbeat, so a first build never looks hung.
  ( while sleep 30; do say "$name $version: still building ($(took "$t0") so far, about $estimate in all)"; done ) &
  local ticker=$!
  local rc=0
  {
    (cd "$dir" && go mod tidy >/dev/null 2>&1 || (cd "$dir" && go mod tidy)) &&
      (cd "$dir" && go build -ldflags "-s -w $LDFLAGS_EXTRA" -o "$BIN/" "$@")
  } || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  [ "$rc" -eq 0 ] || { echo "provision: building $name $version failed (exit $rc)" >&2; exit "$rc"; }
  echo "$version" >"$BIN/.$name.stamp"
  say "$name $version: built in $(took "$t0")"
}

write_main_module() { # dir module-line require-lines...
  local dir=$1; shift
  mkdir -p "$dir"
  { echo "module provision.local/$(basename "$dir")"; echo; echo "go 1.26"; echo; for r in "$@"; do echo "$r"; done; } >"$dir/go.mod"
  # A tools.go keeps `go mod tidy` from dropping the requirement.
  { echo "//go:build tools"; echo "package tools"; } >"$dir/tools.go"
}

T_ALL=$(now)

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  say "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS: using its etcd, kube-apiserver, kube-controller-manager"
  for b in etcd kube-apiserver; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || { echo "provision: $KUBEBUILDER_ASSETS/$b missing or not executable" >&2; exit 1; }
  done
  ASSETS="$KUBEBUILDER_ASSETS"
else
  ASSETS="$BIN"
  # --- etcd ------------------------------------------------------------------
  d="$CACHE/src/etcd-$ETCD_VERSION"
  if ! stamp_ok etcd "$ETCD_VERSION"; then
    write_main_module "$d" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo 'import _ "go.etcd.io/etcd/server/v3"' >>"$d/tools.go"
  fi
  LDFLAGS_EXTRA="" build_module etcd "$ETCD_VERSION" "$d" "1 min" go.etcd.io/etcd/server/v3
  [ -x "$BIN/server" ] && mv "$BIN/server" "$BIN/etcd"

  # --- kube-apiserver + kube-controller-manager -------------------------------
  d="$CACHE/src/kubernetes-$K8S_VERSION"
  if ! stamp_ok kubernetes "$K8S_VERSION"; then
    staging_version="v0.${K8S_VERSION#v1.}"
    mkdir -p "$d"
    # k8s.io/kubernetes's own go.mod lists its staging modules (replace ... => ./staging/...).
    modfile=$(cd "$d" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$modfile" ] || { echo "provision: go mod download gave no go.mod for k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
    mapfile -t staging < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")
    [ "${#staging[@]}" -gt 10 ] || { echo "provision: could not read the staging modules of k8s.io/kubernetes $K8S_VERSION" >&2; exit 1; }
    reqs=("require k8s.io/kubernetes $K8S_VERSION")
    for m in "${staging[@]}"; do reqs+=("replace $m => $m $staging_version"); done
    write_main_module "$d" "${reqs[@]}"
    printf 'import (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n)\n' >>"$d/tools.go"
  fi
  LDFLAGS_EXTRA="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
    build_module kubernetes "$K8S_VERSION" "$d" "4 min" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
fi

cat >"$CACHE/control-plane.env.tmp" <<ENV
export CR_ETCD="$ASSETS/etcd"
export CR_KUBE_APISERVER="$ASSETS/kube-apiserver"
export CR_KUBE_CONTROLLER_MANAGER="$ASSETS/kube-controller-manager"
ENV
mv "$CACHE/control-plane.env.tmp" "$CACHE/control-plane.env"
if [ "$TARGET" = control-plane ]; then
  say "control plane ready in $(took "$T_ALL"); binaries in $ASSETS"
  exit 0
fi

# --- kubelet, kube-scheduler, kube-proxy (the real node of the e2e tests) -------------
# Same k8s.io/kubernetes release and staging pins as the control plane, in a module of its
# own so `provision.sh control-plane` (the demo) never waits for them; the Go build cache
# shares every package the two builds have in common.
d="$CACHE/src/kubernetes-node-$K8S_VERSION"
if ! stamp_ok kubernetes-node "$K8S_VERSION"; then
  mkdir -p "$d"
  [ -f "$CACHE/src/kubernetes-$K8S_VERSION/go.mod" ] || { echo "provision: $CACHE/src/kubernetes-$K8S_VERSION/go.mod missing (KUBEBUILDER_ASSETS set?): the node needs the control plane's module" >&2; exit 1; }
  sed 's#^module .*#module provision.local/kubernetes-node#' "$CACHE/src/kubernetes-$K8S_VERSION/go.mod" >"$d/go.mod"
  [ -f "$CACHE/src/kubernetes-$K8S_VERSION/go.sum" ] && cp "$CACHE/src/kubernetes-$K8S_VERSION/go.sum" "$d/go.sum"
  { echo "//go:build tools"; echo "package tools"; printf 'import (\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kube-proxy"\n)\n'; } >"$d/tools.go"
fi
LDFLAGS_EXTRA="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
  build_module kubernetes-node "$K8S_VERSION" "$d" "3 min" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy

# --- containerd, runc, CNI plugins (Debian) ---------------------------------------
# The node's runtime. Installed once with apt-get (about 10 s); nothing is started: the
# package ships only a systemd unit, and the node launcher runs its own containerd with a
# config and root of its own. gcc, libc6-dev and libssl-dev build the static images below.
t0=$(now)
NODE_UNAVAILABLE=""
CNI_BIN_DIR=/usr/lib/cni
node_tools_ok() {
  local c
  for c in containerd containerd-shim-runc-v2 ctr runc iptables-save conntrack gcc; do
    command -v "$c" >/dev/null || return 1
  done
  compgen -G '/usr/lib/*-linux-gnu/libc.a' >/dev/null || return 1
  compgen -G '/usr/lib/*-linux-gnu/libssl.a' >/dev/null || return 1
  for p in bridge host-local loopback; do [ -x "$CNI_BIN_DIR/$p" ] || return 1; done
}
if node_tools_ok; then
  say "node packages: installed (containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}'), CNI plugins in $CNI_BIN_DIR)"
elif [ "$(id -u)" != 0 ]; then
  NODE_UNAVAILABLE="containerd, runc or the CNI plugins are not installed and provisioning is not root (apt-get needs root)"
  say "node packages: skipped: $NODE_UNAVAILABLE"
else
  say "node packages: installing containerd, runc, containernetworking-plugins, iptables, conntrack, gcc, libssl-dev with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    # Another developer's apt-get may hold the dpkg lock: wait for it rather than fail.
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends \
      containerd runc containernetworking-plugins iptables conntrack gcc libc6-dev libssl-dev >/dev/null
  }
  apt_install || { apt-get update -qq >/dev/null; apt_install; }
  # Were a service manager to have started the package's own containerd, it is not ours.
  (systemctl stop containerd || service containerd stop) >/dev/null 2>&1 || true
  node_tools_ok || { echo "provision: containerd, runc or the CNI plugins still missing after apt-get" >&2; exit 1; }
  say "node packages: installed in $(took "$t0")"
fi

# --- pause and testbox images (static C, no base image, nothing pulled) -----------
# An image is one static binary in one layer, written as an OCI image archive that
# `ctr -n k8s.io images import` takes. The tag is a hash of the source, so a changed
# program is a new image and the archive is cached otherwise.
IMAGES="$CACHE/images"
IMAGE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/images"
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
# oci_archive NAME SOURCE.c ENTRYPOINT_JSON [LIBS...] -> prints "ARCHIVE REF"
oci_archive() {
  local name=$1 src=$2 entrypoint=$3; shift 3
  local tag; tag=$( { cat "$src"; echo "$*"; gcc --version | head -1; } | sha256sum | cut -c1-12)
  local ref="localhost/cert-rotator-test/$name:$tag" archive="$IMAGES/$name-$tag.tar"
  if [ ! -f "$archive" ]; then
    local work; work=$(mktemp -d)
    mkdir -p "$work/root" "$work/oci/blobs/sha256"
    # The linker warns that OpenSSL's name lookups need glibc's shared modules: nothing here
    # looks a name up (numeric addresses only), so its output is shown only if it fails.
    gcc -static -Os -Wall -Wextra -Werror -o "$work/root/$name" "$src" "$@" >"$work/gcc.log" 2>&1 ||
      { cat "$work/gcc.log" >&2; echo "provision: building the $name image from $src failed" >&2; exit 1; }
    strip "$work/root/$name"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/root" -cf "$work/layer.tar" "$name"
    local layer_sha layer_size; layer_sha=$(sha256_of "$work/layer.tar"); layer_size=$(stat -c %s "$work/layer.tar")
    mv "$work/layer.tar" "$work/oci/blobs/sha256/$layer_sha"
    local arch; arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":%s,"User":"65532:65532","WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
      "$arch" "$entrypoint" "$layer_sha" >"$work/config.json"
    local config_sha config_size; config_sha=$(sha256_of "$work/config.json"); config_size=$(stat -c %s "$work/config.json")
    mv "$work/config.json" "$work/oci/blobs/sha256/$config_sha"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
      "$config_sha" "$config_size" "$layer_sha" "$layer_size" >"$work/manifest.json"
    local manifest_sha manifest_size; manifest_sha=$(sha256_of "$work/manifest.json"); manifest_size=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest_sha"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
      "$manifest_sha" "$manifest_size" "$ref" "$tag" >"$work/oci/index.json"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
    mkdir -p "$IMAGES"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$archive.tmp" oci-layout index.json blobs
    mv "$archive.tmp" "$archive"
    rm -rf "$work"
  fi
  echo "$archive $ref"
}
t0=$(now)
if [ -z "$NODE_UNAVAILABLE" ]; then
  read -r PAUSE_ARCHIVE PAUSE_REF < <(oci_archive pause "$IMAGE_SRC/pause.c" '["/pause"]')
  read -r TESTBOX_ARCHIVE TESTBOX_REF < <(oci_archive testbox "$IMAGE_SRC/testbox.c" '["/testbox"]' -lssl -lcrypto -lpthread)
  [ -n "${PAUSE_ARCHIVE:-}" ] && [ -n "${TESTBOX_ARCHIVE:-}" ] || { echo "provision: the node images were not built" >&2; exit 1; }
  say "node images: $PAUSE_REF, $TESTBOX_REF ($(du -ch "$PAUSE_ARCHIVE" "$TESTBOX_ARCHIVE" | tail -1 | cut -f1), $(took "$t0"))"
fi

{ cat "$CACHE/control-plane.env"; cat <<ENV
export CR_NODE_UNAVAILABLE="$NODE_UNAVAILABLE"
export CR_KUBELET="$BIN/kubelet"
export CR_KUBE_SCHEDULER="$BIN/kube-scheduler"
export CR_KUBE_PROXY="$BIN/kube-proxy"
export CR_CONTAINERD="$(command -v containerd || true)"
export CR_CTR="$(command -v ctr || true)"
export CR_RUNC="$(command -v runc || true)"
export CR_CNI_BIN_DIR="$CNI_BIN_DIR"
export CR_PAUSE_IMAGE="${PAUSE_ARCHIVE:-}"
export CR_PAUSE_REF="${PAUSE_REF:-}"
export CR_TESTBOX_IMAGE="${TESTBOX_ARCHIVE:-}"
export CR_TESTBOX_REF="${TESTBOX_REF:-}"
ENV
} >"$CACHE/node.env.tmp"
mv "$CACHE/node.env.tmp" "$CACHE/node.env"
if [ "$TARGET" = node ]; then
  say "node ready in $(took "$T_ALL")"
  exit 0
fi

# --- helm ----------------------------------------------------------------------
d="$CACHE/src/helm-$HELM_VERSION"
stamp_ok helm "$HELM_VERSION" || { write_main_module "$d" "require helm.sh/helm/v3 $HELM_VERSION"; echo 'import _ "helm.sh/helm/v3/cmd/helm"' >>"$d/tools.go"; }
LDFLAGS_EXTRA="" build_module helm "$HELM_VERSION" "$d" "2 min" helm.sh/helm/v3/cmd/helm

# --- pebble + pebble-challtestsrv ---------------------------------------------
d="$CACHE/src/pebble-$PEBBLE_VERSION"
stamp_ok pebble "$PEBBLE_VERSION" || { write_main_module "$d" "require github.com/letsencrypt/pebble/v2 $PEBBLE_VERSION"; printf 'import (\n\t_ "github.com/letsencrypt/pebble/v2/cmd/pebble"\n\t_ "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv"\n)\n' >>"$d/tools.go"; }
LDFLAGS_EXTRA="" build_module pebble "$PEBBLE_VERSION" "$d" "1 min" github.com/letsencrypt/pebble/v2/cmd/pebble github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv

# --- promtool (checks and unit-tests the chart's alert rules) ------------------
d="$CACHE/src/promtool-$PROMTOOL_VERSION"
stamp_ok promtool "$PROMTOOL_VERSION" || { write_main_module "$d" "require github.com/prometheus/prometheus $PROMTOOL_VERSION"; echo 'import _ "github.com/prometheus/prometheus/cmd/promtool"' >>"$d/tools.go"; }
LDFLAGS_EXTRA="" build_module promtool "$PROMTOOL_VERSION" "$d" "5 min" github.com/prometheus/prometheus/cmd/promtool

# --- BIND 9 (named, nsupdate, dig) from Debian -----------------------------------
t0=$(now)
if command -v named >/dev/null && command -v nsupdate >/dev/null && command -v dig >/dev/null; then
  say "bind9: installed ($(named -v | head -1))"
else
  say "bind9: installing with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || { sleep 5; apt-get update -qq >/dev/null; }
  apt-get install -y -qq --no-install-recommends bind9 bind9-utils bind9-dnsutils >/dev/null
  # The package starts a system named on port 53; the tests run their own.
  (service named stop || systemctl stop named || pkill -x named) >/dev/null 2>&1 || true
  say "bind9: installed in $(took "$t0")"
fi

# --- actionlint (lints .github/workflows; the release workflow cannot run here) ---------
d="$CACHE/src/actionlint-$ACTIONLINT_VERSION"
stamp_ok actionlint "$ACTIONLINT_VERSION" || { write_main_module "$d" "require github.com/rhysd/actionlint $ACTIONLINT_VERSION"; echo 'import _ "github.com/rhysd/actionlint/cmd/actionlint"' >>"$d/tools.go"; }
LDFLAGS_EXTRA="" build_module actionlint "$ACTIONLINT_VERSION" "$d" "1 min" github.com/rhysd/actionlint/cmd/actionlint

# --- buildah + mmdebstrap from Debian, and the stand-in base images ---------------------
# The tests build the Dockerfile with buildah; its public bases cannot be pulled here, so
# base-images.sh builds stand-ins from Debian packages and the node@24 npm package.
t0=$(now)
# shellcheck: actionlint checks the workflows' run: scripts with it. containerd: the image test
# imports the archive with ctr into a containerd of its own.
if [ "$(id -u)" -ne 0 ]; then
  # The image tests say the same in one line (a failure with CI=true).
  say "image build: skipped, it needs root (mmdebstrap --mode=root, buildah and containerd with storage of their own)"
elif command -v buildah >/dev/null && command -v mmdebstrap >/dev/null && command -v runc >/dev/null && command -v shellcheck >/dev/null && command -v containerd >/dev/null; then
  say "buildah, mmdebstrap, shellcheck: installed ($(buildah --version | cut -d' ' -f1-3), $(mmdebstrap --version))"
else
  say "buildah, mmdebstrap, shellcheck: installing with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || { sleep 5; apt-get update -qq >/dev/null; }
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends buildah mmdebstrap runc uidmap shellcheck containerd >/dev/null
  # Where a service manager started the package's own containerd: the tests start their own.
  (systemctl stop containerd || service containerd stop) >/dev/null 2>&1 || true
  say "buildah, mmdebstrap, shellcheck: installed in $(took "$t0")"
fi
[ "$(id -u)" -ne 0 ] || bash "$(dirname "${BASH_SOURCE[0]}")/base-images.sh" "$CACHE"

NAMED=$(command -v named)
cat >"$CACHE/env.sh.tmp" <<ENV
export CR_ETCD="$ASSETS/etcd"
export CR_KUBE_APISERVER="$ASSETS/kube-apiserver"
export CR_KUBE_CONTROLLER_MANAGER="$ASSETS/kube-controller-manager"
export CR_HELM="$BIN/helm"
export CR_PEBBLE="$BIN/pebble"
export CR_PEBBLE_CHALLTESTSRV="$BIN/pebble-challtestsrv"
export CR_PROMTOOL="$BIN/promtool"
export CR_ACTIONLINT="$BIN/actionlint"
export CR_NAMED="$NAMED"
export CR_NSUPDATE="$(command -v nsupdate)"
export CR_DIG="$(command -v dig)"
ENV
mv "$CACHE/env.sh.tmp" "$CACHE/env.sh"
say "ready in $(took "$T_ALL"); cache $CACHE uses $(du -sh "$CACHE" | cut -f1) (Go module and build caches: $(du -sh "$(go env GOMODCACHE)" 2>/dev/null | cut -f1), $(du -sh "$(go env GOCACHE)" 2>/dev/null | cut -f1))"
