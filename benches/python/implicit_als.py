"""Time the `implicit` library's ALS on a user/item TSV, for side-by-side comparison with
`trainer train`. Prints the mean seconds per iteration after the first (what
(T(n iterations) - T(1)) / (n - 1) measures), the total fit time, the process's peak RSS
at the end of the fit, and with --test the NDCG@10 of the held-out rows.

The file is read into compact arrays (4 bytes per row and column index), not Python lists,
so that the peak memory is the library's and not the loader's.

NDCG@10 follows omnirec's protocol (and quality_peers.py): a person counts when they have
training rows and held-out items outside their training items; training items and items
nobody trained on are never recommended; relevance is binary.

    pip install implicit==0.7.3
    python3 benches/python/implicit_als.py TRAIN.tsv [--test TEST.tsv] --factors 64 --iterations 15 --threads 2
"""
import argparse
import array
import os
import resource
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402


def columns(header):
    names = header.rstrip("\n").split("\t")
    return names.index("user_id"), names.index("item_id"), names.index("value") if "value" in names else None


def load(path, users, items):
    """The training matrix (persons x items, summed values), filling the id maps."""
    rows, cols, values = array.array("i"), array.array("i"), array.array("f")
    with open(path) as f:
        u_col, i_col, v_col = columns(f.readline())
        for line in f:
            parts = line.rstrip("\n").split("\t")
            rows.append(users.setdefault(parts[u_col], len(users)))
            cols.append(items.setdefault(parts[i_col], len(items)))
            values.append(float(parts[v_col]) if v_col is not None else 1.0)
    matrix = sp.csr_matrix(
        (np.frombuffer(values, dtype=np.float32), (np.frombuffer(rows, dtype=np.int32), np.frombuffer(cols, dtype=np.int32))),
        shape=(len(users), len(items)),
    )
    matrix.sum_duplicates()
    return matrix


def held_out(path, users, items):
    """{person index: held-out item indices} for persons and items known from training."""
    relevant = {}
    with open(path) as f:
        u_col, i_col, v_col = columns(f.readline())
        for line in f:
            parts = line.rstrip("\n").split("\t")
            user, item = users.get(parts[u_col]), items.get(parts[i_col])
            if user is not None and item is not None and (v_col is None or float(parts[v_col]) > 0):
                relevant.setdefault(user, set()).add(item)
    return relevant


def ndcg_at(model, matrix, relevant, k=10, batch=512):
    known = np.diff(matrix.tocsc().indptr) > 0
    total, n = 0.0, 0
    persons = sorted(u for u, items in relevant.items() if matrix.indptr[u + 1] > matrix.indptr[u])
    for start in range(0, len(persons), batch):
        block = persons[start:start + batch]
        scores = model.user_factors[block] @ model.item_factors.T
        scores[:, ~known] = -np.inf
        sub = matrix[block]
        scores[np.repeat(np.arange(len(block)), np.diff(sub.indptr)), sub.indices] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        for row, user in enumerate(block):
            history = set(sub.indices[sub.indptr[row]:sub.indptr[row + 1]])
            wanted = relevant[user] - history
            if not wanted:
                continue
            ranked = sorted(top[row], key=lambda i: -scores[row, i])
            dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(ranked) if i in wanted and scores[row, i] > -np.inf)
            ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(wanted))))
            total += dcg / ideal
            n += 1
    return total / max(n, 1), n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--test")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    users, items = {}, {}
    matrix = load(args.path, users, items)
    model = AlternatingLeastSquares(
        factors=args.factors,
        iterations=args.iterations,
        regularization=args.regularization,
        alpha=args.alpha,
        num_threads=args.threads,
        use_gpu=False,
        random_state=42,
    )
    stamps = [time.perf_counter()]
    started = stamps[0]
    model.fit(matrix, show_progress=False, callback=lambda *_: stamps.append(time.perf_counter()))
    total = time.perf_counter() - started
    per_iteration = [b - a for a, b in zip(stamps, stamps[1:])]
    later = per_iteration[1:] or per_iteration
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = (
        f"implicit {matrix.shape[0]}x{matrix.shape[1]} nnz={matrix.nnz}: "
        f"{sum(later) / len(later):.3f} s/iteration, fit {total:.2f} s, peak RSS {peak_mb:.0f} MB"
    )
    if args.test:
        ndcg, n = ndcg_at(model, matrix, held_out(args.test, users, items))
        line += f", NDCG@10 {ndcg:.4f} over {n} persons"
    print(line)


if __name__ == "__main__":
    main()
