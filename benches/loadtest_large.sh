#!/usr/bin/env bash
# Serving large catalogs: the candidate stage against scoring every item, in one run.
#
#   bash benches/loadtest_large.sh [WORK_DIR]     # default target/loadtest-large
#
# - 100,000 items: `trainer generate --persons 20000 --items 100000` (omnichannel events),
#   every default model (EASE is refused above its max_items, as in production), the blend
#   tuned as by default.
# - 1,000,000 items: `trainer generate --persons 100000 --items 1000000
#   --plain-interactions 5000000`, every default model the data allows (popularity,
#   item-kNN, ALS: no catalog for content, EASE refused), the blend tuned as by default;
#   64 ALS factors in both.
# Each artifact is served three times: `home` and `als_only` with the default `[candidates]`,
# the same with `per_member = 0` (every item scored), then every built-in placement with the
# default stage; each run driven by `server loadtest` (32 connections, 10 s). Load time
# (until /health/ready answers 200) and resident memory are printed too, and first the
# stage's recall of the exact top 10 with the time of one answer (`benches` bin `candidates`)
# and its NDCG change on held-out events (SKIP_QUALITY=1 skips that part).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/loadtest-large}
connections=${CONNECTIONS:-32}
seconds=${SECONDS_PER_RUN:-10}
mkdir -p "$work"
cargo build --release --locked -p server -p trainer
cargo build --release --locked -p benches --bin candidates
bin=target/release
# Whether an artifact must be trained (anew): missing, or of an older format.
stale() { ! "$bin/trainer" inspect "$1" >/dev/null 2>&1; }

if stale "$work/100k.omr"; then
    "$bin/trainer" generate --out "$work/100k" --persons 20000 --items 100000
    printf '[als]\nfactors = 64\n' > "$work/100k.toml"
    "$bin/trainer" train --events "$work/100k/events.jsonl" --items "$work/100k/catalog.csv" \
        --config "$work/100k.toml" --out "$work/100k.omr"
fi
if [ -z "${SKIP_1M:-}" ] && stale "$work/1m.omr"; then
    "$bin/trainer" generate --out "$work/1m" --persons 100000 --items 1000000 --plain-interactions 5000000
    printf '[als]\nfactors = 64\n' > "$work/1m.toml"
    "$bin/trainer" train --interactions "$work/1m/interactions.tsv" --config "$work/1m.toml" --out "$work/1m.omr"
fi

# The stage's effect on quality: the 100k events split in time (the last tenth held out), a
# model trained on the rest, and `trainer compare` of that model with itself, every item
# scored (A) against the candidate stage (B), on the held-out events.
if [ -z "${SKIP_QUALITY:-}" ]; then
    if stale "$work/split.omr"; then
        python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
lines = open(f"{work}/100k/events.jsonl").read().splitlines()
times = sorted(json.loads(line)["timestamp"] for line in lines)
cut = times[len(times) * 9 // 10]
with open(f"{work}/split-train.jsonl", "w") as train, open(f"{work}/split-test.jsonl", "w") as test:
    for line in lines:
        (test if json.loads(line)["timestamp"] >= cut else train).write(line + "\n")
PY
        "$bin/trainer" train --events "$work/split-train.jsonl" --items "$work/100k/catalog.csv" \
            --config "$work/100k.toml" --out "$work/split.omr"
    fi
    echo "== NDCG on held-out events: every item scored (A) against the candidate stage (B)"
    "$bin/trainer" compare "$work/split.omr" "$work/split.omr" --exact a \
        --test "$work/split-test.jsonl" --items "$work/100k/catalog.csv" 2>/dev/null
    if stale "$work/split-untuned.omr"; then
        printf '[blend]\ntune = false\n[als]\nfactors = 64\n' > "$work/100k-untuned.toml"
        "$bin/trainer" train --events "$work/split-train.jsonl" --items "$work/100k/catalog.csv" \
            --config "$work/100k-untuned.toml" --out "$work/split-untuned.omr"
    fi
    echo "== NDCG on held-out events: the tuned blend (A) against the configured defaults (B)"
    "$bin/trainer" compare "$work/split.omr" "$work/split-untuned.omr" \
        --test "$work/split-test.jsonl" --items "$work/100k/catalog.csv" 2>/dev/null
fi

# serve NAME MODEL PER_MEMBER PLACEMENT...   (PER_MEMBER `default`: the built-in `[candidates]`;
# PLACEMENT `all`: the built-in placements, each with its own k, instead of `home` and `als_only`)
serve() {
    local name=$1 model=$2 per_member=$3 candidates=""
    shift 3
    [ "$per_member" = default ] || candidates="per_member = $per_member"
    if [ "$1" = all ]; then
        printf '[candidates]\n%s\n' "$candidates" > "$work/server.toml"
    else
        printf '[candidates]\n%s\n[placements.home]\nchannel = "web"\n[placements.als_only]\nweights = { als = 1.0 }\n' \
            "$candidates" > "$work/server.toml"
    fi
    local addr=127.0.0.1:18090 started
    started=$(date +%s.%N)
    "$bin/server" --model "$model" --config "$work/server.toml" --listen "$addr" 2>"$work/server-$name.log" &
    local server=$!
    until curl -sf "http://$addr/health/ready" >/dev/null 2>&1; do
        kill -0 $server 2>/dev/null || { echo "server exited: see $work/server-$name.log" >&2; return 1; }
        sleep 0.1
    done
    echo "== $name: ready after $(echo "$(date +%s.%N) - $started" | bc) s, resident $(($(awk '/VmRSS/ {print $2}' /proc/$server/status) / 1024)) MB"
    for placement in "$@"; do
        if [ "$placement" = all ]; then
            echo "-- every built-in placement"
            "$bin/server" loadtest --addr "$addr" --model "$model" --connections "$connections" --seconds "$seconds" --placement all
            continue
        fi
        echo "-- placement $placement"
        "$bin/server" loadtest --addr "$addr" --model "$model" --connections "$connections" --seconds "$seconds" --placement "$placement" --k 10
    done
    kill -TERM $server
    wait $server || true
}

echo "== candidate stage against every item scored (single thread, home placement, 1,000 persons)"
"$bin/candidates" "$work/100k.omr" 1000
serve "100k items, candidates" "$work/100k.omr" default home als_only
serve "100k items, every item scored" "$work/100k.omr" 0 home als_only
serve "100k items, candidates, built-in placements" "$work/100k.omr" default all
if [ -z "${SKIP_1M:-}" ]; then
    "$bin/candidates" "$work/1m.omr" 300
    serve "1M items, candidates" "$work/1m.omr" default home als_only
    serve "1M items, every item scored" "$work/1m.omr" 0 home als_only
    serve "1M items, candidates, built-in placements" "$work/1m.omr" default all
fi
