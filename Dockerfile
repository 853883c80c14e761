# syntax=docker/dockerfile:1
# cert-rotator container image.
#
#   docker build -t cert-rotator:0.1.0 .
#
# The build stage runs scripts/build-image.sh, the same script the integration tests run
# (test/integration/chart-image.test.ts), so the image holds exactly what the tests started:
# the compiled dist/, package.json and the production dependencies, nothing else.

FROM node:24-bookworm-slim AS build
WORKDIR /src
# Dependencies first, so a source change does not reinstall them. --ignore-scripts: the
# `node` devDependency's install script would fetch a second Node; this image has one.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/build-image.sh ./scripts/build-image.sh
RUN bash scripts/build-image.sh /out

# Runtime: distroless Node 24, no shell, no package manager, user 65532 (nonroot).
FROM gcr.io/distroless/nodejs24-debian12:nonroot
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
