# syntax=docker/dockerfile:1
# cert-rotator container image.
#
#   docker build -t cert-rotator:0.1.0 .
#
# The two bases are build arguments. The defaults are the public images the release workflow
# (.github/workflows/release.yml) builds on; the tests build this same file with buildah on
# local stand-ins of both, because they cannot pull (test/testenv/base-images.sh, docs/operations.md).
ARG BUILD_BASE=node:24-bookworm-slim
ARG RUNTIME_BASE=gcr.io/distroless/nodejs24-debian12:nonroot

# The build stage runs on the builder's own platform: its output is JavaScript and pure-JavaScript
# dependencies (no install scripts, no native modules), the same for amd64 and arm64, so a
# multi-platform release does not compile under emulation.
FROM --platform=$BUILDPLATFORM ${BUILD_BASE} AS build
WORKDIR /src
# Dependencies first, so a source change does not reinstall them. --ignore-scripts: the
# `node` devDependency's install script would fetch a second Node; this image has one.
# --prefer-offline: the locked tarballs come from the npm cache when it has them (the tests
# mount theirs and build with no network at all).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# /out is what ships: the compiled dist/, package.json, the lock file and the production
# dependencies at the locked versions. --omit=optional leaves out @kubernetes/client-node, which
# only exec and auth-provider kubeconfigs load and a pod never does (65 MB of the 107 MB);
# without it such a kubeconfig fails with an error that says so. A dev dependency or
# client-node in /out fails the build.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir /out/dist \
 && cp package.json package-lock.json /out/ \
 && cd /out \
 && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error \
 && for p in typescript vitest @biomejs node @kubernetes/client-node; do \
      if [ -e "node_modules/$p" ]; then echo "image build: $p must not be in /out/node_modules" >&2; exit 1; fi; \
    done

# Runtime: distroless Node 24, no shell, no package manager, user 65532 (nonroot).
FROM ${RUNTIME_BASE}
WORKDIR /app
COPY --from=build /out/ /app/
ENV NODE_ENV=production
USER 65532:65532
# The metrics, health and readiness server (config metrics.address) and the HTTP-01 solver.
EXPOSE 9402 8089
# Nothing is written outside /tmp: the image runs with a read-only root filesystem.
# --no-opt --no-maglev: V8 runs bytecode and its baseline compiler only. Its two optimizing
# compilers kept 9 MiB with no Secrets and ~34 MiB at 5,000 TLS Secrets that the work never
# needed (docs/operations.md, "Memory"); the sidecar drops to under 60 MiB with them off.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=1", "--no-opt", "--no-maglev", "/app/dist/cli.js"]
CMD ["controller", "--config", "/etc/cert-rotator/config.yaml"]
