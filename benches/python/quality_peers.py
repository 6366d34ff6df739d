"""Offline quality of Python peers on the files `trainer evaluate` reads, scored with
omnirec's metric definitions (models/src/metrics.rs).

    python3 benches/python/quality_peers.py --train train.tsv --test test.tsv \
        [--valid-train train_fit.tsv --valid valid.tsv] [--items items.tsv] [--k 10] [--json]

Peers: `implicit` ALS (64 factors, 15 iterations, its other defaults) and tuned ALS;
item-item cosine and BM25 (K = 100, and K tuned); EASE in NumPy (float64, binarised input,
lambda tuned). Tuning fits on --valid-train, picks the best NDCG@k on --valid (the first
in grid order on a tie), then refits on --train. Without a validation split only the
untuned models run (EASE with lambda = 500).

Data, as omnirec loads it: the catalog is the items file's ids in file order, then the
new items of --train, then those of --test; a person's training history is the items
whose summed value is positive (the values, e.g. ratings, are the confidences). Scores:
ALS user x item factors; item-item history values x similarity (the K-neighbour matrix of
`implicit`); EASE X B. A person gets the k best-scoring items that have a training
interaction and are not in their history, ties to the lower catalog index (as top_k).

Metrics, per person with a training history and a non-empty relevant set T (positive-
weight test items not in their history; items without a training interaction count in
|T| but cannot be hit): precision = hits / k; recall = hits / |T|; NDCG with binary gains
and IDCG over min(k, |T|) hits; MAP = sum of precision@rank at hits / min(k, |T|); hit
rate; MRR; each averaged over those persons. Coverage: share of the catalog recommended to
anyone. Novelty: mean over every recommended slot of the item's popularity percentile, the
popularity being the number of distinct training persons with the item, the percentile
(mid-rank - 1) / (n - 1) over the n catalog items ranked by ascending popularity, tied
items sharing the mean of their ranks (0 = least popular, 1 = the single most popular);
higher means more popular, less novel. Diversity (with --items): mean over those persons
of the number of distinct categories among their top-k items.
"""
import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.stats import rankdata  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# implicit's item-item models hand their own COO matrices to a CSR routine, and say so.
warnings.filterwarnings("ignore", message="Method expects CSR input")
THREADS = int(os.environ.get("OPENBLAS_NUM_THREADS", "2"))
ALS_GRID = [(f, r, a) for f in (64, 128) for r in (0.01, 0.1, 1.0) for a in (1.0, 10.0, 40.0)]
KNN_GRID = [50, 100, 200]
EASE_GRID = [50, 100, 200, 300, 500, 1000, 2000]


def read_table(path):
    """Rows of a CSV/TSV with a header (delimiter as omnirec detects it), as dicts."""
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\r\n")
        delimiter = max(["\t", ",", ";", "|"], key=header.count)
        columns = [c.strip().strip('"').lower() for c in header.split(delimiter)]
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                yield dict(zip(columns, line.split(delimiter)))


def read_interactions(path):
    rows = []
    for row in read_table(path):
        value = row.get("value", row.get("rating"))
        rows.append((row["user_id"].strip(), row["item_id"].strip(), float(value) if value else 1.0))
    return rows


def read_catalog(path):
    """(item ids in file order, categories per id)."""
    ids, categories = [], {}
    for row in read_table(path):
        item = row["item_id"].strip()
        ids.append(item)
        raw = row.get("categories", row.get("category", row.get("genres", ""))) or ""
        categories[item] = [c.strip() for c in raw.split("|") if c.strip()]
    return ids, categories


class Split:
    """A train/test pair indexed the way omnirec indexes it."""

    def __init__(self, train_path, test_path, catalog):
        train, test = read_interactions(train_path), read_interactions(test_path)
        item_ids, categories = catalog
        self.items = {item: i for i, item in enumerate(item_ids)}
        users = {}
        for user, item, _ in train + test:
            users.setdefault(user, len(users))
            self.items.setdefault(item, len(self.items))
        self.n_items = len(self.items)
        rows = [users[u] for u, _, _ in train]
        cols = [self.items[i] for _, i, _ in train]
        vals = np.array([v for _, _, v in train], dtype=np.float64)
        summed = sp.csr_matrix((vals, (rows, cols)), shape=(len(users), self.n_items))
        summed.sum_duplicates()
        summed.data[summed.data <= 0] = 0
        summed.eliminate_zeros()
        self.X = summed.astype(np.float32)
        relevant = [set() for _ in users]
        for user, item, value in test:
            if value > 0:
                relevant[users[user]].add(self.items[item])
        history = [set(self.X.indices[self.X.indptr[u]:self.X.indptr[u + 1]]) for u in range(len(users))]
        self.users = [u for u in range(len(users)) if history[u] and relevant[u] - history[u]]
        self.relevant = {u: relevant[u] - history[u] for u in self.users}
        self.known = np.diff(self.X.tocsc().indptr) > 0  # items with a training interaction
        popularity = np.diff(self.X.tocsc().indptr)  # distinct training persons per item
        ranks = rankdata(popularity, method="average")
        self.percentile = (ranks - 1) / max(self.n_items - 1, 1)
        index_ids = sorted(self.items, key=self.items.get)
        self.categories = [categories.get(i, []) for i in index_ids] if categories is not None else None


def top_k(split, scores_of, k, batch=2048):
    """{person: top-k item indices} over the evaluated persons; `scores_of(rows)` gives a
    dense score array for those rows of the training matrix."""
    lists = {}
    for start in range(0, len(split.users), batch):
        users = split.users[start:start + batch]
        scores = np.asarray(scores_of(users), dtype=np.float64)
        scores[:, ~split.known] = -np.inf
        sub = split.X[users]
        scores[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] = -np.inf
        scores[np.isnan(scores)] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for row, user in enumerate(users):
            lists[user] = [int(i) for i in order[row] if scores[row, i] > -np.inf]
    return lists


def score_list(ranked, relevant, k):
    hits, dcg, ap, rr = 0, 0.0, 0.0, 0.0
    for rank, item in enumerate(ranked[:k]):
        if item in relevant:
            hits += 1
            dcg += 1.0 / np.log2(rank + 2)
            ap += hits / (rank + 1)
            if rr == 0.0:
                rr = 1.0 / (rank + 1)
    ideal = min(k, len(relevant))
    idcg = sum(1.0 / np.log2(r + 2) for r in range(ideal))
    return [hits / k, hits / len(relevant), dcg / idcg, ap / ideal, float(hits > 0), rr]


def evaluate(split, lists, k):
    sums = np.zeros(6)
    for user in split.users:
        sums += score_list(lists[user], split.relevant[user], k)
    n = max(len(split.users), 1)
    slots = [i for user in split.users for i in lists[user]]
    metrics = dict(zip(["precision", "recall", "ndcg", "map", "hit_rate", "mrr"], (sums / n).tolist()))
    metrics.update(
        k=k,
        coverage=len(set(slots)) / max(split.n_items, 1),
        n_users=len(split.users),
        novelty=float(np.mean(split.percentile[slots])) if slots else 0.0,
        diversity=None,
    )
    if split.categories is not None:
        metrics["diversity"] = sum(
            len({c for i in lists[u] for c in split.categories[i]}) for u in split.users
        ) / n
    return metrics


# Fitting: each returns a function of person rows to dense scores.

def fit_als(X, factors, regularization, alpha, iterations=15):
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):  # implicit's advice: no BLAS threads inside its own
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
            num_threads=THREADS, random_state=42,
        )
        model.fit(X, show_progress=False)
    users, items = model.user_factors, model.item_factors
    return lambda rows: users[rows] @ items.T


def fit_knn(X, kind, K):
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    model = (CosineRecommender if kind == "cosine" else BM25Recommender)(K=K, num_threads=THREADS)
    model.fit(X, show_progress=False)
    similarity = model.similarity.astype(np.float64)
    return lambda rows: (X[rows].astype(np.float64) @ similarity).toarray()


class Ease:
    """EASE (Steck 2019) on the binarised matrix; the Gram matrix is kept across lambdas."""

    def __init__(self, X):
        self.X = (X > 0).astype(np.float64)
        self.gram = (self.X.T @ self.X).toarray()

    def fit(self, lam):
        G = self.gram.copy()
        G[np.diag_indices_from(G)] += lam
        P = np.linalg.inv(G)
        B = -P / np.diag(P)  # B = I - P diag(P)^-1: column j divided by P_jj
        np.fill_diagonal(B, 0.0)
        X = self.X
        return lambda rows: X[rows] @ B


def run(split, fit, k):
    """(metrics, fit seconds, scoring seconds)."""
    started = time.perf_counter()
    scores_of = fit()
    fitted = time.perf_counter()
    metrics = evaluate(split, top_k(split, scores_of, k), k)
    return metrics, fitted - started, time.perf_counter() - fitted


def tune(valid, grid, fit_of, k, label):
    """The grid point with the best validation NDCG@k, and every point's NDCG."""
    started = time.perf_counter()
    results = []
    for point in grid:
        metrics, _, _ = run(valid, lambda: fit_of(valid, point), k)
        results.append((point, metrics["ndcg"]))
        log(f"  {label} {point}: valid NDCG@{k} {metrics['ndcg']:.4f}")
    best = max(results, key=lambda r: r[1])  # max keeps the first of equal values
    return best[0], results, time.perf_counter() - started


def log(message):
    print(message, file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--valid-train")
    parser.add_argument("--valid")
    parser.add_argument("--items")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args()
    if bool(args.valid_train) != bool(args.valid):
        parser.error("--valid-train and --valid go together")
    import implicit

    catalog = read_catalog(args.items) if args.items else ([], None)
    split = Split(args.train, args.test, catalog)
    valid = Split(args.valid_train, args.valid, catalog) if args.valid else None
    log(f"peers: implicit {implicit.__version__}, numpy {np.__version__}, {THREADS} threads; "
        f"{split.X.shape[0]} persons, {split.n_items} catalog items, {split.X.nnz} training pairs, "
        f"{len(split.users)} persons evaluated")
    k = args.k
    rows = []

    def add(name, params, fit, tuning=None):
        metrics, fit_s, score_s = run(split, fit, k)
        row = {"model": name, "params": params, "metrics": metrics, "fit_seconds": fit_s, "score_seconds": score_s}
        if tuning:
            point_names, results, seconds = tuning
            row["tuning"] = {"seconds": seconds,
                             "valid_ndcg": [{**dict(zip(point_names, p)), "ndcg": v} for p, v in results]}
        rows.append(row)
        tuned = f"  (tuning {tuning[2]:.1f}s)" if tuning else ""
        log(f"{name:<34} NDCG@{k} {metrics['ndcg']:.4f}  fit {fit_s:.2f}s  score {score_s:.2f}s{tuned}")

    add("implicit ALS", {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
        lambda: fit_als(split.X, 64, 0.01, 1.0))
    if valid:
        best, results, seconds = tune(valid, ALS_GRID, lambda s, p: fit_als(s.X, *p), k, "ALS")
        f, r, a = best
        add(f"implicit ALS tuned (f={f} reg={r:g} a={a:g})",
            {"factors": f, "regularization": r, "alpha": a, "iterations": 15},
            lambda: fit_als(split.X, f, r, a), (("factors", "regularization", "alpha"), results, seconds))
    for kind, label in (("cosine", "item-item cosine"), ("bm25", "item-item BM25")):
        add(f"implicit {label} (K=100)", {"K": 100}, lambda kind=kind: fit_knn(split.X, kind, 100))
        if valid:
            best, results, seconds = tune(
                valid, [(K,) for K in KNN_GRID], lambda s, p, kind=kind: fit_knn(s.X, kind, p[0]), k, label)
            add(f"implicit {label} tuned (K={best[0]})", {"K": best[0]},
                lambda kind=kind, K=best[0]: fit_knn(split.X, kind, K), (("K",), results, seconds))
    if valid:
        started = time.perf_counter()
        valid_ease = Ease(valid.X)
        best, results, _ = tune(valid, [(lam,) for lam in EASE_GRID],
                                lambda s, p: valid_ease.fit(p[0]), k, "EASE lambda")
        seconds = time.perf_counter() - started  # with the Gram matrix
        lam = best[0]
        add(f"EASE tuned (lambda={lam})", {"lambda": lam}, lambda: Ease(split.X).fit(lam),
            (("lambda",), results, seconds))
    else:
        add("EASE (lambda=500, untuned)", {"lambda": 500}, lambda: Ease(split.X).fit(500))

    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"| model | prec@{k} | recall@{k} | NDCG@{k} | MAP@{k} | hit rate | MRR | coverage | novelty | diversity |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            m = row["metrics"]
            diversity = "-" if m["diversity"] is None else f"{m['diversity']:.2f}"
            print(f"| {row['model']} | " + " | ".join(
                f"{m[key]:.4f}" for key in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty")
            ) + f" | {diversity} |")


if __name__ == "__main__":
    main()
