# syntax=docker/dockerfile:1
#
# framehub: multi-stage image. The build stage compiles the native VAD addon (node-gyp) and the
# daemon's TypeScript; the runtime stage holds only production node_modules and that build output
# (no bench/, no test/: the load-test harness is its own project, bench/tsconfig.json), and runs
# as the unprivileged `node` user under tini.
#
#   docker build -t framehub .
#   docker run --rm -p 8080:8080 -e FRAMEHUB_AUTH_HS256_SECRET="$(openssl rand -base64 48)" framehub
#
# AUTH IS REQUIRED: the image binds 0.0.0.0 (FRAMEHUB_HOST below), and framehub refuses to start on
# a non-loopback address without an auth key. Run it with
#   -e FRAMEHUB_AUTH_HS256_SECRET=<32+ bytes>
# or mount a config file that has an `auth` section and set -e FRAMEHUB_CONFIG=/path/config.json
# (arguments after the image name replace the whole CMD, preload included, so pass settings
# through the environment). /metrics and /healthz need no token.

ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------- build
FROM ${NODE_IMAGE} AS build
# node-gyp needs python3, make and a C++ compiler for native/.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# `npm ci` runs this package's own lifecycle scripts, so everything they read must be here first:
#   install -> scripts/build-native.mjs -> node-gyp in native/ -> native/build/Release/framehub_vad.node
#   prepare -> tsc -p tsconfig.build.json (src, workers) -> dist/
COPY package.json package-lock.json tsconfig.base.json tsconfig.build.json ./
COPY scripts/ scripts/
COPY native/ native/
COPY src/ src/
COPY workers/ workers/
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund

# The install script only warns when the addon fails to build (the JS VAD still works); an image
# should not silently ship the slow path, so fail here instead.
RUN test -f native/build/Release/framehub_vad.node && test -f dist/src/main.js \
 && test -f dist/src/threadpool-preload.cjs

# Dev dependencies go only now: `prepare` needed typescript. --ignore-scripts makes sure nothing
# (node-gyp, tsc) runs again without them.
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# uWebSockets.js ships a binary for every platform and Node ABI (~250 MB); keep the one this Node
# loads (both stages use the same NODE_IMAGE, so the ABI matches at run time).
RUN keep="uws_$(node -p 'process.platform+"_"+process.arch+"_"+process.versions.modules').node" \
 && find node_modules/uWebSockets.js -maxdepth 1 -name 'uws_*.node' ! -name "$keep" -delete \
 && test -f "node_modules/uWebSockets.js/$keep"

# -------------------------------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
# The test-pattern camera draws its clock with DejaVu (see src/media/ffmpeg-path.ts). ffmpeg itself
# comes from @ffmpeg-installer in node_modules. tini is PID 1: it forwards SIGTERM to node (whose
# handler shuts down within shutdown.deadlineMs) and reaps any orphaned ffmpeg, which node as
# PID 1 would leave as zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core tini \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    FRAMEHUB_HOST=0.0.0.0 \
    FRAMEHUB_PORT=8080
WORKDIR /app

# Owned by root and read-only to the daemon. packageRoot is found by walking up to package.json;
# the viewer page is read from src/server/viewer at run time, and the addon is loaded from
# native/build/Release/ (src/vad/backend.ts falls back to JS if it is missing).
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/native/build/Release/framehub_vad.node native/build/Release/
COPY --from=build /app/src/server/viewer/ src/server/viewer/

USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.FRAMEHUB_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# The preload sets UV_THREADPOOL_SIZE from the config (one libuv thread per image worker, at
# least 4) before Node starts libuv's thread pool, where sharp resizes; an ES module is too late.
# `-e UV_THREADPOOL_SIZE=N` overrides it.
# Absolute paths, so `docker run -w <dir>` still finds them.
CMD ["node", "--require", "/app/dist/src/threadpool-preload.cjs", "/app/dist/src/main.js"]
