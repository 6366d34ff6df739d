#!/usr/bin/env bash
# Load test: omnirec's server, then a plain Python service (FastAPI + NumPy) on the same ALS
# factors, each driven by `server loadtest` on loopback (32 connections, 10 s, 10k items; the
# Python service three times, its best run being the one to compare with).
#
#   bash benches/loadtest.sh [WORK_DIR]      # default target/loadtest
#
# The data set (20k persons, 10k items, 64 ALS factors, all five models) is generated and
# trained once and reused. The Python half runs when python3 has fastapi, uvicorn and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/loadtest}
connections=${CONNECTIONS:-32}
seconds=${SECONDS_PER_RUN:-10}
mkdir -p "$work"
cargo build --release --locked -p server -p trainer
bin=target/release

# An artifact of an older format (or none) is trained anew.
if ! "$bin/trainer" inspect "$work/model.omr" >/dev/null 2>&1; then
    "$bin/trainer" generate --out "$work/data" --persons 20000 --items 10000
    "$bin/trainer" train --events "$work/data/events.jsonl" --items "$work/data/catalog.csv" --out "$work/model.omr"
fi

wait_ready() {
    for _ in $(seq 1 200); do
        curl -sf "http://$1/health/ready" >/dev/null 2>&1 && return 0
        curl -sf -o /dev/null "http://$1/v1/users/x/recommendations" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "server on $1 did not come up" >&2
    return 1
}

# First the built-in placements as a server without placements has them (`home`, `app_home`,
# `product_page`, `email_weekly`, `sms`, `store_kiosk`, `call_center`), each with its own k;
# then ALS alone (the same work as the Python baseline: one dot product per item, then the
# top 10) on a server configured with that placement only.
cat > "$work/als_only.toml" <<'TOML'
default_placement = "als_only"
[placements.als_only]
weights = { als = 1.0 }
TOML
addr=127.0.0.1:18080
serve() {
    "$bin/server" --model "$work/model.omr" "$@" --listen "$addr" 2>>"$work/server.log" &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    wait_ready "$addr"
}
: > "$work/server.log"
serve
echo "== omnirec server, every built-in placement (blend of every model, rules, explanations), ${seconds} s each"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --connections "$connections" --seconds "$seconds" --placement all
kill -TERM $server
wait $server || true
serve --config "$work/als_only.toml"
# What the HTTP exchange alone costs here (the load generator shares the cores): no endpoint
# of any service on this machine answers faster than this.
echo "== omnirec server, GET /health/live (no work: the HTTP exchange alone)"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --connections "$connections" --seconds "$seconds" --path /health/live
echo "== omnirec server, placement als_only (ALS scores, rules, explanations), k 10"
"$bin/server" loadtest --addr "$addr" --model "$work/model.omr" --connections "$connections" --seconds "$seconds" --placement als_only --k 10
kill -TERM $server
wait $server || true

if python3 -c 'import fastapi, uvicorn, numpy' 2>/dev/null; then
    "$bin/trainer" inspect "$work/model.omr" --export-als "$work/als" >/dev/null
    paddr=127.0.0.1:18081
    # One BLAS thread per worker process: more only oversubscribes the two cores.
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 OMNIREC_EXPORT="$work/als" python3 benches/python/serve_fastapi.py 18081 "${PY_WORKERS:-2}" 2>"$work/python.log" &
    python=$!
    trap 'kill $python 2>/dev/null || true' EXIT
    wait_ready "$paddr"
    # Three runs, to show how steady it is; compare against the best.
    echo "== Python FastAPI + uvicorn (${PY_WORKERS:-2} workers) + NumPy, ALS dot product + argpartition (3 runs)"
    for _ in 1 2 3; do
        "$bin/server" loadtest --addr "$paddr" --model "$work/model.omr" --connections "$connections" --seconds "$seconds" --placement "" --k 10
    done
    kill $python
    wait $python 2>/dev/null || true
else
    echo "python3 lacks fastapi/uvicorn/numpy: skipping the Python comparison (pip install fastapi uvicorn numpy)"
fi
