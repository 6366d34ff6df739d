#!/usr/bin/env bash
# Dashboard: a headless Chromium renders GET /dashboard of a real keyed server (ephemeral port,
# data directory of its own) after an experiment with two variants has had traffic, exposures
# and purchases. Checks the key gate (401 with a Basic challenge, 200 with the key as the Basic
# password), the rendered DOM (the experiment's section and chart, one mark per variant, the
# health section) and that a screenshot was taken; the screenshot is kept in
# target/dashboard.png.
#
# Installs Debian's chromium when no chromium is on PATH (needs root and apt). Knobs:
# OMNIREC_DASHBOARD_BIN (directory of prebuilt `server` and `trainer`; default: build the dev
# binaries).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! CHROMIUM=$(command -v chromium || command -v chromium-browser); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
  CHROMIUM=$(command -v chromium)
fi

if [ -n "${OMNIREC_DASHBOARD_BIN:-}" ]; then
  BIN=$OMNIREC_DASHBOARD_BIN
else
  cargo build --quiet --locked -p server -p trainer
  BIN=target/debug
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A server still loading its model writes its state after SIGTERM: wait before removing.
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=()
fail() {
  echo "dashboard: FAIL: $*" >&2
  failures+=("$*")
}
# Ends the run: the closing line CI counts, and the exit status.
finish() {
  if [ "${#failures[@]}" -eq 0 ]; then
    echo "dashboard: 1 passed, 0 failed"
    exit 0
  fi
  echo "-- server log:"
  tail -n 40 "$WORK/server.log" 2>/dev/null || true
  echo "dashboard: 0 passed, 1 failed"
  exit 1
}
# Stops the run at once (setup failed).
abort() {
  fail "$@"
  finish
}

"$BIN/trainer" generate --out "$WORK/data" --persons 300 --items 80 --seed 7 > "$WORK/generate.log" 2>&1 ||
  { cat "$WORK/generate.log"; abort "trainer generate failed"; }
"$BIN/trainer" train --events "$WORK/data/events.jsonl" --items "$WORK/data/catalog.csv" \
  --out "$WORK/model.omr" > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; abort "trainer train failed"; }

KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$WORK/server.toml" <<TOML
[[keys]]
name = "dashboard"
roles = ["admin"]
env = "OMNIREC_DASHBOARD_KEY"
TOML
OMNIREC_DASHBOARD_KEY=$KEY OMNIREC_LOG=info "$BIN/server" --model "$WORK/model.omr" --data-dir "$WORK/state" \
  --config "$WORK/server.toml" --listen 127.0.0.1:0 > "$WORK/server.log" 2>&1 &
PIDS+=("$!")
ADDR=""
for _ in $(seq 1 300); do
  ADDR=$(grep -o 'listening on http://[0-9.:]*' "$WORK/server.log" | head -n 1 | sed 's|listening on http://||' || true)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || abort "the server did not start"
# It listens before its model is loaded (503 until then).
for _ in $(seq 1 600); do
  curl --silent --fail --output /dev/null "http://$ADDR/health/ready" && break
  sleep 0.1
done
curl --silent --fail --output /dev/null "http://$ADDR/health/ready" || abort "the server did not get ready"
echo "== dashboard, server at $ADDR"

# Calls the API with the key: METHOD PATH [JSON BODY]; prints the answer, fails on a non-2xx.
api() {
  local args=(--silent --show-error --fail-with-body -X "$1" -H "Authorization: Bearer $KEY")
  [ $# -ge 3 ] && args+=(-H "Content-Type: application/json" --data "$3")
  curl "${args[@]}" "http://$ADDR$2"
}

# The key gate: a browser is asked for the key (Basic), and gets in with it as the password.
status=$(curl --silent --output /dev/null --write-out '%{http_code}' --dump-header "$WORK/401.headers" \
  "http://$ADDR/dashboard")
if [ "$status" = 404 ]; then
  abort "GET /dashboard answered 404: is $BIN/server older than the dashboard?"
fi
[ "$status" = 401 ] || fail "GET /dashboard without a key answered $status, not 401"
grep -qi '^www-authenticate: *basic' "$WORK/401.headers" ||
  fail "the 401 of GET /dashboard does not ask for Basic credentials (WWW-Authenticate: Basic)"
status=$(curl --silent --output /dev/null --write-out '%{http_code}' -u "admin:$KEY" "http://$ADDR/dashboard")
[ "$status" = 200 ] || fail "GET /dashboard with the key as the Basic password answered $status, not 200"

# An experiment over the home placement, and traffic for both of its variants.
api PUT /v1/experiments/dash-test \
  '{"placements":["home"],"variants":[{"name":"popular","share":1,"popular":true},{"name":"blend","share":1}]}' \
  > "$WORK/experiment.json" || { cat "$WORK/experiment.json"; echo; abort "PUT /v1/experiments/dash-test failed"; }
for n in $(seq 1 40); do
  api POST /v1/recommendations "{\"identifiers\":{\"cookie_id\":\"c$n\"},\"placement\":\"home\",\"channel\":\"web\"}" \
    > "$WORK/answer-$n.json" || { cat "$WORK/answer-$n.json"; echo; abort "POST /v1/recommendations (c$n) failed"; }
done
# Purchases of a recommended item by a few of those persons: conversions for the chart.
now=$(date +%s)
for n in 1 2 3 5 8 13 21 34; do
  item=$(grep -o '"item_id":"[^"]*"' "$WORK/answer-$n.json" | head -n 1 | cut -d'"' -f4)
  [ -n "$item" ] || abort "the answer for c$n recommends no item"
  api POST /v1/events \
    "{\"events\":[{\"cookie_id\":\"c$n\",\"channel\":\"web\",\"type\":\"purchase\",\"item_id\":\"$item\",\"timestamp\":$now,\"value\":10}]}" \
    > "$WORK/events-$n.json" || { cat "$WORK/events-$n.json"; echo; abort "POST /v1/events (c$n) failed"; }
  grep -q '"accepted":1' "$WORK/events-$n.json" ||
    fail "the purchase of c$n was not accepted: $(cat "$WORK/events-$n.json")"
done
api GET /v1/experiments/dash-test/report > "$WORK/report.json" ||
  { cat "$WORK/report.json"; echo; abort "GET /v1/experiments/dash-test/report failed"; }

# The browser, with the key as the Basic password in the URL.
chromium() {
  timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d -p "$WORK")" "$@" "http://admin:$KEY@$ADDR/dashboard" 2> "$WORK/chromium.log"
}
chromium --dump-dom > "$WORK/dom.html" || { tail -n 20 "$WORK/chromium.log"; abort "chromium --dump-dom failed"; }
chromium --screenshot="$WORK/dashboard.png" --window-size=1280,2000 > /dev/null ||
  { tail -n 20 "$WORK/chromium.log"; abort "chromium --screenshot failed"; }

# The DOM as the browser built it.
DOM=$WORK/dom.html
grep -q 'data-experiment="dash-test"' "$DOM" ||
  fail "the page shows no experiment dash-test (no data-experiment=\"dash-test\"); is the key refused? $(head -c 300 "$DOM")"
grep -q '<svg class="chart"' "$DOM" || fail "the page has no chart (<svg class=\"chart\")"
# The chart of dash-test: from its <svg> to the next </svg>.
CHART=$(tr '\n' ' ' < "$DOM" | grep -o '<svg class="chart" data-experiment="dash-test".*' | sed 's|</svg>.*|</svg>|' || true)
if [ -z "$CHART" ]; then
  fail "no chart for dash-test (<svg class=\"chart\" data-experiment=\"dash-test\")"
else
  marks=$(grep -o 'class="variant-mark"' <<< "$CHART" | wc -l)
  [ "$marks" -eq 2 ] || fail "the chart of dash-test has $marks variant marks, not 2 (one per variant)"
fi
grep -q 'id="health"' "$DOM" || fail "the page has no serving health section (id=\"health\")"

# The screenshot: a PNG of some size.
if [ ! -f "$WORK/dashboard.png" ]; then
  fail "chromium wrote no screenshot"
else
  cp "$WORK/dashboard.png" target/dashboard.png
  size=$(stat -c %s "$WORK/dashboard.png")
  [ "$(head -c 8 "$WORK/dashboard.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    fail "the screenshot is not a PNG"
  [ "$size" -gt 10240 ] || fail "the screenshot is only $size bytes (a blank page?)"
  echo "screenshot: target/dashboard.png ($size bytes)"
fi

finish
