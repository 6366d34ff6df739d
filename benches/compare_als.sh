#!/usr/bin/env bash
# Side-by-side ALS: omnirec's `trainer train` (ALS only) and the `implicit` library on the
# same plain interactions, same hyperparameters (64 factors, 15 iterations, CG 3 steps,
# regularization 0.1, alpha 10), 2 threads each, in one run. Per set it prints, for both:
# seconds per iteration (mean after the first, which is (T(15) − T(1)) / 14), peak RSS of
# the whole process (`trainer train`; implicit's loading and fit), and NDCG@10 on held-out
# rows of a sample of persons (the same rows for both).
#   bash benches/compare_als.sh            # 50k persons × 10k items × 2M interactions
#   bash benches/compare_als.sh --large    # that, and 500k × 50k × 20M
# Needs `pip install implicit==0.7.3 numpy scipy threadpoolctl`. OMNIREC_SIMD=avx2 (or
# scalar) runs omnirec's kernels on a narrower instruction set than the CPU's widest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import implicit" 2>/dev/null || {
  echo "needs: pip install implicit==0.7.3 numpy scipy threadpoolctl" >&2
  exit 1
}
cargo build --release -q -p trainer
trainer=$PWD/target/release/trainer
work=${TMPDIR:-/tmp}/omnirec-als-bench
mkdir -p "$work"
export RAYON_NUM_THREADS=2
printf '[models]\nenabled = ["als"]\n[als]\nfactors = 64\niterations = 15\ncg_steps = 3\nregularization = 0.1\nalpha = 10.0\n' \
  > "$work/als.toml"

# run NAME PERSONS ITEMS INTERACTIONS SAMPLE_EVERY
run() {
  local dir=$work/$1
  mkdir -p "$dir"
  [ -f "$dir/interactions.tsv" ] ||
    "$trainer" generate --out "$dir" --persons "$2" --items "$3" --plain-interactions "$4" > /dev/null
  [ -f "$dir/test.tsv" ] ||
    python3 benches/python/sample_holdout.py "$dir/interactions.tsv" "$dir/train.tsv" "$dir/test.tsv" --every "$5"
  /usr/bin/time -f "peak_kb=%M" "$trainer" -v train --interactions "$dir/train.tsv" --config "$work/als.toml" \
    --out "$dir/model.omr" > "$dir/train.log" 2>&1
  local per_iteration peak ndcg
  per_iteration=$(grep -o 'seconds=[0-9.]*' "$dir/train.log" | cut -d= -f2 | tail -n +2 |
    awk '{s += $1} END {printf "%.3f", s / NR}')
  peak=$(grep -o 'peak_kb=[0-9]*' "$dir/train.log" | cut -d= -f2 | awk '{printf "%.0f", $1 / 1024}')
  ndcg=$("$trainer" evaluate --train "$dir/train.tsv" --test "$dir/test.tsv" --config "$work/als.toml" --json |
    python3 -c 'import json, sys; r = [x for x in json.load(sys.stdin) if x["model"] == "als"][0]["metrics"]; print("%.4f over %d persons" % (r["ndcg"], r["n_users"]))')
  echo "== $1: $4 interactions, $2 persons, $3 items"
  echo "omnirec 0.1 (simd ${OMNIREC_SIMD:-widest}): $per_iteration s/iteration, peak RSS $peak MB, NDCG@10 $ndcg"
  python3 benches/python/implicit_als.py "$dir/train.tsv" --test "$dir/test.tsv" \
    --factors 64 --iterations 15 --regularization 0.1 --alpha 10 --threads 2 | tee "$dir/implicit.txt"
  python3 - "$per_iteration" "$peak" "$dir/implicit.txt" <<'EOF'
import re, sys
ours, peak, text = float(sys.argv[1]), float(sys.argv[2]), open(sys.argv[3]).read()
theirs = float(re.search(r"([0-9.]+) s/iteration", text).group(1))
their_peak = float(re.search(r"peak RSS ([0-9]+) MB", text).group(1))
print(f"ratio omnirec / implicit: time per iteration {ours / theirs:.2f}, peak memory {peak / their_peak:.2f}")
EOF
}

run small 50000 10000 2000000 5
if [ "${1:-}" = "--large" ]; then
  run large 500000 50000 20000000 25
fi
