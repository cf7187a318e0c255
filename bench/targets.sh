#!/bin/sh
# The full target runs recorded in bench/RESULTS.md (bench/README.md, "The target runs").
# About 11 minutes on 2 cores; run it on a quiet machine from the repository root.
set -eu
ulimit -n 65536 2>/dev/null || echo "note: could not raise the open-file limit (now $(ulimit -n))" >&2
# The daemon (dist/) and the harness (dist-bench/, bench/tsconfig.json) are separate builds.
npm run build --silent
npm run bench:build --silent
bench() { node dist-bench/bench/cli.js "$@"; }
bench fanout --viewers 1000 --seconds 30 --warmup 3 --repeat 3
bench idle --conns 10000 --hold 5
bench slow --viewers 1000 --slow-fraction 0.1 --seconds 30 --warmup 3 --repeat 3
bench http --seconds 5 --warmup 2 --repeat 3
bench churn --concurrency 20 --seconds 30 --warmup 3
node dist-bench/bench/report.js
