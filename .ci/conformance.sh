#!/usr/bin/env bash
# API conformance: schemathesis, every check, against a real server on an ephemeral port with
# a data directory of its own, once open (no keys) and once keyed (the document then declares
# the key). Fails on any 5xx or any answer that does not match /openapi.json.
#
# Installs a pinned schemathesis into target/conformance-venv when missing. Knobs:
# OMNIREC_CONFORMANCE_EXAMPLES (test cases per operation and phase, default 100),
# OMNIREC_CONFORMANCE_BIN (directory of prebuilt `server` and `trainer`; default: build the
# dev binaries).
set -euo pipefail
cd "$(dirname "$0")/.."

ST_VERSION=4.32.5
VENV=target/conformance-venv
EXAMPLES=${OMNIREC_CONFORMANCE_EXAMPLES:-100}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

if [ -n "${OMNIREC_CONFORMANCE_BIN:-}" ]; then
  BIN=$OMNIREC_CONFORMANCE_BIN
else
  cargo build --quiet --locked -p server -p trainer
  BIN=target/debug
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/trainer" generate --out "$WORK/data" --persons 300 --items 80 --seed 7 > "$WORK/generate.log" 2>&1
"$BIN/trainer" train --events "$WORK/data/events.jsonl" --items "$WORK/data/catalog.csv" \
  --out "$WORK/model.omr" > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; exit 1; }

# Starts a server (log in $WORK/$1.log, more flags after the name) and sets ADDR to where
# it listens.
start_server() {
  local name=$1
  shift
  OMNIREC_LOG=info "$BIN/server" --model "$WORK/model.omr" --listen 127.0.0.1:0 "$@" > "$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(grep -o 'listening on http://[0-9.:]*' "$WORK/$name.log" | head -n 1 | sed 's|listening on http://||' || true)
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "the $name server did not start:" >&2
  cat "$WORK/$name.log" >&2
  return 1
}

passed=0
failed=0
# Runs schemathesis against the server at $ADDR; more st flags after the name.
conform() {
  local name=$1
  shift
  echo "== conformance, $name server"
  local started=$SECONDS
  # One worker: Python 3.11's `ast` is not thread-safe (CPython gh-106905), and hypothesis
  # parses lambda sources from every worker thread; two workers failed a run spuriously with
  # "AST constructor recursion depth mismatch" on a check that had passed.
  if "$VENV/bin/st" --no-color --config-file .ci/schemathesis.toml run "http://$ADDR/openapi.json" \
    --checks all \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --workers 1 \
    --seed 20261124 \
    --request-timeout 10 \
    --continue-on-failure \
    "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "-- server log ($name):"
    tail -n 40 "$WORK/$name.log"
  fi
  echo "== $name: $((SECONDS - started)) s"
}

start_server open --data-dir "$WORK/state-open"
conform open

KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$WORK/keyed.toml" <<TOML
[[keys]]
name = "conformance"
roles = ["admin"]
env = "OMNIREC_CONFORMANCE_KEY"
TOML
OMNIREC_CONFORMANCE_KEY=$KEY start_server keyed --config "$WORK/keyed.toml" --data-dir "$WORK/state-keyed"
conform keyed --header "Authorization: Bearer $KEY"

echo "conformance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
