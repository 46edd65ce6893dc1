# syntax=docker/dockerfile:1
#
# The mpd image: the `mpd` command (`mpd orchestrator …`, `mpd worker …`) with the demo pipeline
# and its sample project, in the repository's layout under /mpd (the WORKDIR), so that
# `--pipeline apps/demo/src/demo.pipeline.ts` means the same file here as in a checkout.
#
#   docker build -t mpd:local .
#   docker run --rm mpd:local --version
#   docker compose up --build --exit-code-from orchestrator     (compose.yaml: orchestrator + 2 workers)
#
# For your own pipeline, build FROM this image and COPY your pipeline file (and what it imports)
# under /mpd, or mount it, and give its path to both commands.
#
# No container engine runs on the machines that test this repository: the build below is not
# run by the tests. What they run is every step's counterpart in the workspace (`pnpm install
# --frozen-lockfile`, `pnpm build` through CI, the demo through the `mpd` command) and the
# containers' commands, environments, service names and healthcheck as compose.yaml gives them
# (tests/integration/deploy/compose-netns.spec.ts); see the README's "Deploy" section.

ARG NODE_VERSION=20

# ---- build: install the workspace, build every package's dist/, keep only what runs -----------
FROM node:${NODE_VERSION}-bookworm AS build
# CI=true: pnpm answers its prompts itself (the production install below removes node_modules
# first); nx runs without its daemon and never connects to its cloud (nx.json says so too).
ENV CI=true NX_DAEMON=false NX_NO_CLOUD=true
RUN npm install -g pnpm@10
WORKDIR /mpd
# The dependencies from the lockfile alone, so that this layer is rebuilt only when it changes
# (pnpm's own pattern for Docker: `pnpm fetch`, then an offline install).
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN --mount=type=cache,id=mpd-pnpm-store,target=/pnpm/store \
    pnpm fetch --store-dir /pnpm/store
COPY . .
RUN --mount=type=cache,id=mpd-pnpm-store,target=/pnpm/store \
    pnpm install --frozen-lockfile --offline --store-dir /pnpm/store
# ESM JavaScript, declarations and source maps in each package's dist/ (nx run-many -t build).
RUN pnpm build
# The production install, into fresh node_modules directories: devDependencies (TypeScript,
# vitest, nx, …) go, the workspace's links and the dist/ directories stay. (`--prod` over the
# existing node_modules unlinks the devDependencies but leaves their files in node_modules/.pnpm:
# 164 MB instead of 32.) The tests and benchmarks do not run in the image.
RUN --mount=type=cache,id=mpd-pnpm-store,target=/pnpm/store \
    rm -rf tests bench .nx node_modules packages/*/node_modules apps/*/node_modules \
 && pnpm install --frozen-lockfile --offline --prod --store-dir /pnpm/store

# ---- runtime: slim, non-root, tini as PID 1 -----------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# tini is PID 1: it passes SIGTERM/SIGINT on to `mpd` (a worker drains on the first, cancels on
# the second) and reaps orphaned processes that modules leave behind. Without an init, node
# would be PID 1, which the kernel gives no default signal actions. `docker run --init` would
# do the same, but only when the user remembers it: the image does not rely on it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
# MPD_PORT: orchestrator and worker both listen on 8080 in their container (each container has
# a network of its own), so the healthcheck needs no per-command port; MPD_HOST defaults to
# 0.0.0.0 for both.
ENV NODE_ENV=production MPD_PORT=8080
WORKDIR /mpd
COPY --from=build /mpd /mpd
# `mpd` on PATH: the compiled @mpd/cli, exec'd so that node itself gets tini's signals (no
# shell in between). Checked here: the build fails if it does not start.
# Modules write under their working directory (the demo: .mpd/artifacts): the one writable place
# in /mpd for the runtime user.
RUN printf '#!/bin/sh\nexec node /mpd/packages/cli/dist/main.js "$@"\n' > /usr/local/bin/mpd \
 && chmod 755 /usr/local/bin/mpd \
 && mpd --version \
 && mkdir -p /mpd/.mpd \
 && chown node:node /mpd/.mpd
# The node image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
# GET /api/health (no token needed) with node's own fetch: no curl in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "deploy/healthcheck.mjs"]
ENTRYPOINT ["tini", "--", "mpd"]
CMD ["help"]
