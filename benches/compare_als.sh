#!/usr/bin/env bash
# Side-by-side ALS timing: omnirec's `trainer train` (ALS only) and the `implicit` library
# on the same plain interactions file, same factors and iterations, 2 threads each.
#   bash benches/compare_als.sh [FILE]   (default: a generated 50k x 10k x 2M set)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p trainer
trainer=target/release/trainer
work=${TMPDIR:-/tmp}/omnirec-als-bench
mkdir -p "$work"
file=${1:-}
if [ -z "$file" ]; then
  file=$work/interactions.tsv
  [ -f "$file" ] || "$trainer" generate --out "$work" --persons 50000 --items 10000 --plain-interactions 2000000
fi
printf '[models]\nenabled = ["als"]\n[als]\nfactors = 64\niterations = 15\n' > "$work/als.toml"
export RAYON_NUM_THREADS=2
ours=$( { /usr/bin/time -f "peak RSS %M KB" "$trainer" -v train --interactions "$file" --config "$work/als.toml" --out "$work/model.omr"; } 2>&1 )
echo "$ours" | grep -o 'seconds=[0-9.]*' | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {printf "omnirec: median %.3f s/iteration over %d iterations\n", a[int((NR+1)/2)], NR}'
echo "$ours" | grep -E "peak RSS|training took" | sed 's/.*INFO.\[0m //'
python3 benches/python/implicit_als.py "$file" --factors 64 --iterations 15 --threads 2
