#!/usr/bin/env bash
# Ingestion benchmark: durable events per second on loopback (batches of 100, 8 to 32
# senders), the time from a purchase's acknowledgement to the answer that excludes it, and
# what ingesting at half the best rate costs the recommendations' p99.
#
#   bash benches/ingest.sh [WORK_DIR]      # default target/loadtest (shares loadtest.sh's model)
#
# Targets on these 2-core machines: at least 20,000 durable events/s; recommendation p99
# under load within 20 % of the read-only p99 while ingesting at half that rate (10,000/s).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/loadtest}
seconds=${SECONDS_PER_RUN:-10}
mkdir -p "$work"
cargo build --release --locked -p server -p trainer
bin=target/release

# An artifact of an older format (or none) is trained anew.
if ! "$bin/trainer" inspect "$work/model.omr" >/dev/null 2>&1; then
    "$bin/trainer" generate --out "$work/data" --persons 20000 --items 10000
    "$bin/trainer" train --events "$work/data/events.jsonl" --items "$work/data/catalog.csv" --out "$work/model.omr"
fi

state=$(mktemp -d)
addr=127.0.0.1:18090
"$bin/server" --model "$work/model.omr" --data-dir "$state" --listen "$addr" 2>"$work/ingest-server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$state"' EXIT
for _ in $(seq 1 300); do
    curl -sf "http://$addr/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
done

best=0
for senders in 8 16 32; do
    echo "== ingest: $senders senders, batches of 100"
    out=$("$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --mode ingest --connections "$senders" --batch 100 --seconds "$seconds")
    echo "$out"
    rate=$(echo "$out" | grep -o '[0-9]* events/s' | head -1 | grep -o '^[0-9]*')
    [ "${rate:-0}" -gt "$best" ] && best=$rate
done
echo "== recommendations alone (32 connections, placement home)"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --connections 32 --seconds "$seconds" --k 10
rate=${INGEST_RATE:-10000}
echo "== recommendations while ingesting $rate events/s (half the 20,000 target; best measured: $best)"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --mode mixed --connections 32 --ingest-rate "$rate" --ingest-senders 32 --seconds "$seconds" --k 10
echo "== recommendations alone again"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --connections 32 --seconds "$seconds" --k 10
echo "store file after the runs: $(du -h "$state/store.redb" | cut -f1)"
