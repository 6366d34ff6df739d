"""Per-person holdout of an interactions TSV (`user_id item_id [value] [timestamp]`, times
in epoch seconds), with the counts `trainer evaluate` holds out when it splits a file
itself (datasets/src/split.rs):

    a person with n >= 2 rows holds out n_test = clamp(floor(fraction * n + 0.5), 1, n - 1)
    rows (round half up, at least one in test and one in train); a person with one row
    keeps it in train.

Temporal (default): each person's rows are ordered by (timestamp, item id), item ids
compared as integers when all are integers, and the last n_test go to test (omnirec's own
split keeps equal times in file order instead; MovieLens has many). `--random SEED`
instead orders each person's rows by a seeded shuffle (for files without timestamps), and
writes them in that order, so that a later split of the file that keeps the file order for
equal times (as omnirec's does, for its blend-tuning validation) holds out a random share
too. Temporal splits write rows in input order. Both keep the input's header.

    python3 holdout.py IN.tsv TRAIN.tsv TEST.tsv [--fraction 0.2] [--random SEED]
"""
import argparse
import random


def read_rows(path):
    """The header line and the data rows (lists of fields) of a tab-separated file."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n")
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    return header, rows


def n_held_out(n, fraction):
    """How many of a person's n rows go to test."""
    if n < 2:
        return 0
    return min(max(int(fraction * n + 0.5), 1), n - 1)


def split(header, rows, fraction=0.2, seed=None):
    """(train rows, test rows); see the module's docstring for the rule."""
    columns = header.split("\t")
    u_col, i_col = columns.index("user_id"), columns.index("item_id")
    t_col = columns.index("timestamp") if "timestamp" in columns else None
    numeric = all(r[i_col].lstrip("-").isdigit() for r in rows)

    def order_key(index):
        row = rows[index]
        time = int(float(row[t_col])) if t_col is not None else 0
        return (time, int(row[i_col]) if numeric else row[i_col])

    by_person = {}
    for index, row in enumerate(rows):
        by_person.setdefault(row[u_col], []).append(index)
    is_test = [False] * len(rows)
    order = []
    for person, indices in by_person.items():
        if seed is None:
            indices.sort(key=order_key)
        else:
            random.Random(f"{seed}:{person}").shuffle(indices)
        n_test = n_held_out(len(indices), fraction)
        for index in indices[len(indices) - n_test:]:
            is_test[index] = True
        order.extend(indices)
    if seed is None:
        order = range(len(rows))
    train = [rows[i] for i in order if not is_test[i]]
    test = [rows[i] for i in order if is_test[i]]
    return train, test


def write_rows(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        f.writelines("\t".join(r) + "\n" for r in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--random", type=int, default=None, metavar="SEED")
    args = parser.parse_args()
    header, rows = read_rows(args.input)
    train, test = split(header, rows, args.fraction, args.random)
    write_rows(args.train, header, train)
    write_rows(args.test, header, test)
    print(f"{args.input}: {len(train)} train rows -> {args.train}, {len(test)} test rows -> {args.test}")


if __name__ == "__main__":
    main()
