"""One markdown table from `trainer evaluate --json` and `quality_peers.py --json` output,
each model's NDCG as a ratio to the best single Python peer's.

    python3 benches/python/quality_table.py OMNIREC.json PEERS.json

Validation NDCG is omnirec's figure on the split its blend was tuned on (carved out of
train), beside the test figure; "-" where there is none (the peers tune on their own
validation split, see quality_peers.py).
"""
import json
import sys


def cell(metrics, key, digits=4):
    value = metrics.get(key)
    return "-" if value is None else f"{value:.{digits}f}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        ours = json.load(f)
    with open(sys.argv[2]) as f:
        peers = json.load(f)
    best = max(peers, key=lambda r: r["metrics"]["ndcg"])
    best_ndcg = best["metrics"]["ndcg"]
    k = best["metrics"]["k"]
    rows = [(r["model"], r["metrics"]) for r in peers] + [(f"omnirec {r['model']}", r["metrics"]) for r in ours]
    validation = {f"omnirec {r['model']}": (r.get("validation") or {}) for r in ours}
    print(f"| model | NDCG@{k} | recall@{k} | prec@{k} | hit rate | coverage@{k} | novelty | diversity "
          "| validation NDCG | vs best peer NDCG |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        ratio = m["ndcg"] / best_ndcg if best_ndcg > 0 else float("nan")
        print(f"| {name} | {cell(m, 'ndcg')} | {cell(m, 'recall')} | {cell(m, 'precision')} | "
              f"{cell(m, 'hit_rate')} | {cell(m, 'coverage')} | {cell(m, 'novelty')} | "
              f"{cell(m, 'diversity', 2)} | {cell(validation.get(name, {}), 'ndcg')} | {ratio:.3f}× |")
    blend = next((r["metrics"] for r in ours if r["model"] == "blend"), None)
    line = f"best peer: {best['model']} NDCG {best_ndcg:.4f}"
    if blend is not None:
        line += f"; omnirec blend NDCG {blend['ndcg']:.4f} = {blend['ndcg'] / best_ndcg:.3f}×"
    print(line)


if __name__ == "__main__":
    main()
