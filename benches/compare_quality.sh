#!/usr/bin/env bash
# Side-by-side offline quality: `trainer evaluate` (every model and the blend) and Python
# peers (implicit ALS, item-item cosine and BM25, EASE in NumPy; defaults and tuned on a
# validation split of train) on the same train/test files, scored with the same metrics.
#   bash benches/compare_quality.sh [DATADIR]   MovieLens 100k, or DATADIR's files:
#       train.tsv test.tsv [items.tsv] [train_fit.tsv valid.tsv] (see benches/python/)
#   bash benches/compare_quality.sh --synthetic  generated plain interactions, random holdout
# TRAINER=path/to/trainer skips the cargo build. 2 threads everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${TMPDIR:-/tmp}/omnirec-quality
mkdir -p "$work"

export RAYON_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
python3 -c 'import implicit, numpy, scipy, threadpoolctl' 2>/dev/null ||
  python3 -m pip install -q implicit==0.7.3 numpy scipy threadpoolctl

if [ -n "${TRAINER:-}" ]; then
  trainer=$TRAINER
else
  cargo build --release -q -p trainer
  trainer=$root/target/release/trainer
fi

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

case "${1:-}" in
  --synthetic)
    # Plain interactions have no timestamps, so a temporal holdout would hold out each
    # person's highest item ids (the file lists them sorted): hold out a seeded random 20%.
    data=$work/synthetic
    mkdir -p "$data"
    if [ ! -f "$data/test.tsv" ]; then
      "$trainer" generate --out "$data" --persons 10000 --items 2000 --plain-interactions 300000
      python3 benches/python/holdout.py "$data/interactions.tsv" "$data/train.tsv" "$data/test.tsv" --random 42
      python3 benches/python/holdout.py "$data/train.tsv" "$data/train_fit.tsv" "$data/valid.tsv" --random 43
    fi
    ;;
  "")
    data=$work/ml-100k
    [ -f "$data/test.tsv" ] || python3 benches/python/movielens.py "$data"
    ;;
  *) data=$1 ;;
esac

items=()
[ -f "$data/items.tsv" ] && items=(--items "$data/items.tsv")
valid=()
[ -f "$data/valid.tsv" ] && valid=(--valid-train "$data/train_fit.tsv" --valid "$data/valid.tsv")

# The peers rank only items with a training interaction; so does omnirec here, side by side
# (its default ranks every catalog item, new ones included: printed after the table).
started=$(now)
"$trainer" evaluate --train "$data/train.tsv" --test "$data/test.tsv" "${items[@]}" --k 10 --json \
  --trained-items-only > "$work/omnirec.json" 2> "$work/omnirec.log"
ours=$(since "$started")
"$trainer" evaluate --train "$data/train.tsv" --test "$data/test.tsv" "${items[@]}" --k 10 --json \
  > "$work/omnirec-all-items.json" 2> /dev/null
started=$(now)
python3 benches/python/quality_peers.py --train "$data/train.tsv" --test "$data/test.tsv" \
  "${items[@]}" "${valid[@]}" --k 10 --json > "$work/peers.json" 2> "$work/peers.log"
peers=$(since "$started")

grep -E "^peers:|tuned|blend weights" "$work/peers.log" "$work/omnirec.log" | sed 's/^[^:]*://; s/.*INFO[^ ]* *//' || true
echo "wall time: omnirec evaluate ${ours} s (load, blend tuning, every model, scoring); Python peers ${peers} s (tuning included)"
echo
python3 benches/python/quality_table.py "$work/omnirec.json" "$work/peers.json"
python3 - "$work/omnirec-all-items.json" <<'PY'
import json, sys
rows = {r["model"]: r["metrics"] for r in json.load(open(sys.argv[1]))}
print(f"omnirec ranking every catalog item (items nobody interacted with in training too): "
      f"blend NDCG@10 {rows['blend']['ndcg']:.4f}, content {rows['content']['ndcg']:.4f}"
      if "content" in rows else f"blend NDCG@10 {rows['blend']['ndcg']:.4f}")
PY
