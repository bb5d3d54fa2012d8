#!/usr/bin/env bash
# The control plane's resident memory while it stores many activation records: starts
# `whisk controlplane` on a scratch data directory, reports RECORDS records over gRPC in STEPS
# batches (controlplane/examples/report_load.rs), lists activations through the API after each
# batch, and prints VmRSS after each. Run it with the store cache as configured (default 16 MiB)
# and with `CACHE_MB=1024` (redb's default, the behaviour before the cache was bounded).
#
#   bench/mem/controlplane-rss.sh                # RECORDS=60000 STEPS=6 CACHE_MB=16
#   CACHE_MB=1024 bench/mem/controlplane-rss.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${RECORDS:-60000}
STEPS=${STEPS:-6}
CACHE_MB=${CACHE_MB:-16}
KEEP=${KEEP:-10000}
BIN=${WHISK_BIN:-target/debug/whisk}
LOAD=${LOAD_BIN:-target/debug/examples/report_load}
[ -x "$BIN" ] && [ -x "$LOAD" ] || cargo build -q -p whisk-controlplane --bin whisk --example report_load
data=$(mktemp -d)
out=$data/out
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
RUST_LOG=warn "$BIN" controlplane --data-dir "$data/store" --prewarm '' \
  --store-cache-mb "$CACHE_MB" --activations-per-namespace "$KEEP" >"$out" 2>"$data/err" &
pid=$!
for _ in $(seq 100); do grep -q WHISK_CONTROLPLANE_HTTP "$out" 2>/dev/null && break; sleep 0.1; done
grpc=$(awk '/WHISK_CONTROLPLANE_GRPC/ {print $2}' "$out")
http=$(awk '/WHISK_CONTROLPLANE_HTTP/ {print $2}' "$out")
guest=23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
echo "cache_mb=$CACHE_MB keep=$KEEP records rss_kib"
echo "$CACHE_MB $KEEP 0 $(rss)"
per=$((RECORDS / STEPS))
for step in $(seq 0 $((STEPS - 1))); do
  "$LOAD" "http://$grpc" "$data/store/router-token" $((step * per)) "$per" 16 2>/dev/null
  for skip in $(seq 0 200 1800); do
    curl -sf -u "$guest" "http://$http/api/v1/namespaces/_/activations?limit=200&skip=$skip&docs=true" >/dev/null
  done
  echo "$CACHE_MB $KEEP $(((step + 1) * per)) $(rss)"
done
