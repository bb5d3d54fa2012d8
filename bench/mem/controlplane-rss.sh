#!/usr/bin/env bash
# The control plane's resident memory while it stores and serves many activation records:
# starts `whisk controlplane` on a scratch data directory, reports RECORDS records over gRPC in
# STEPS batches (controlplane/examples/report_load.rs; spread over NAMESPACES namespaces, results
# of RESULT_BYTES), reads every kept record of each namespace back through the API (lists of 200,
# with docs) after each batch, and prints VmRSS and the store file's size after each batch.
# Compare the store cache as configured (CACHE_MB, default 16) with CACHE_MB=1024 (redb's
# default, what the control plane used before the cache was bounded).
#
#   bench/mem/controlplane-rss.sh
#   CACHE_MB=1024 bench/mem/controlplane-rss.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RECORDS=${RECORDS:-60000}
STEPS=${STEPS:-6}
CACHE_MB=${CACHE_MB:-16}
KEEP=${KEEP:-10000}
NAMESPACES=${NAMESPACES:-6}
RESULT_BYTES=${RESULT_BYTES:-2048}
BIN=${WHISK_BIN:-target/debug/whisk}
LOAD=${LOAD_BIN:-target/debug/examples/report_load}
[ -x "$BIN" ] && [ -x "$LOAD" ] || cargo build -q -p whisk-controlplane --bin whisk --example report_load
data=$(mktemp -d)
out=$data/out
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$data"' EXIT
RUST_LOG=warn "$BIN" controlplane --data-dir "$data/store" --prewarm '' \
  --store-cache-mb "$CACHE_MB" --activations-per-namespace "$KEEP" >"$out" 2>"$data/err" &
pid=$!
for _ in $(seq 100); do grep -q WHISK_CONTROLPLANE_HTTP "$out" 2>/dev/null && break; sleep 0.1; done
grpc=$(awk '/WHISK_CONTROLPLANE_GRPC/ {print $2}' "$out")
http=$(awk '/WHISK_CONTROLPLANE_HTTP/ {print $2}' "$out")
token=$(cat "$data/store/admin-token")
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
# A key for each namespace, to read its records through the API.
declare -a keys
for n in $(seq 0 $((NAMESPACES - 1))); do
  keys[$n]=$(curl -sf -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"namespace\":\"load$n\"}" "http://$http/_whisk/admin/users" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["uuid"]+":"+d["key"])')
done
echo "cache_mb records rss_kib store_file_kib"
echo "$CACHE_MB 0 $(rss) $(($(stat -c %s "$data/store/controlplane.redb") / 1024))"
per=$((RECORDS / STEPS))
for step in $(seq 0 $((STEPS - 1))); do
  "$LOAD" "http://$grpc" "$data/store/router-token" $((step * per)) "$per" 16 "$NAMESPACES" "$RESULT_BYTES" 2>/dev/null
  for n in $(seq 0 $((NAMESPACES - 1))); do
    for skip in $(seq 0 200 $((KEEP - 200))); do
      curl -sf -u "${keys[$n]}" "http://$http/api/v1/namespaces/_/activations?limit=200&skip=$skip&docs=true" >/dev/null
    done
  done
  echo "$CACHE_MB $(((step + 1) * per)) $(rss) $(($(stat -c %s "$data/store/controlplane.redb") / 1024))"
done
