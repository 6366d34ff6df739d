"""Time the `implicit` library's ALS on a user/item TSV, for side-by-side comparison with
`trainer train`. Prints the median seconds per iteration, the total fit time and peak RSS.

    pip install implicit==0.7.3
    python3 benches/python/implicit_als.py interactions.tsv --factors 64 --iterations 15 --threads 2
"""
import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402


def load(path):
    users, items, values = {}, {}, []
    rows, cols = [], []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        u_col, i_col = header.index("user_id"), header.index("item_id")
        v_col = header.index("value") if "value" in header else None
        for line in f:
            parts = line.rstrip("\n").split("\t")
            rows.append(users.setdefault(parts[u_col], len(users)))
            cols.append(items.setdefault(parts[i_col], len(items)))
            values.append(float(parts[v_col]) if v_col is not None else 1.0)
    return sp.csr_matrix((np.array(values, dtype=np.float32), (rows, cols)), shape=(len(users), len(items)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    matrix = load(args.path)
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
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"implicit {matrix.shape[0]}x{matrix.shape[1]} nnz={matrix.nnz}: "
        f"median {statistics.median(per_iteration):.3f} s/iteration, fit {total:.2f} s, peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
