"""MovieLens 100k in omnirec's file formats, with per-person temporal holdouts.

The data comes from the copy inside the `recbole` 1.2.1 wheel on PyPI (no other network),
cached under ${TMPDIR:-/tmp}/omnirec-quality. Writes into OUTDIR:

    ratings.tsv     every rating: user_id, item_id, value (the 1-5 rating), timestamp
    items.tsv       item_id, title, categories (the genres, `|`-separated; "unknown" left out)
    train.tsv       ratings minus the last 20% of each person's (see holdout.py for the rule)
    test.tsv        those last 20%
    train_fit.tsv   train.tsv minus the last 20% of each person's train ratings, same rule
    valid.tsv       those, for tuning on train only

    python3 benches/python/movielens.py OUTDIR
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import holdout  # noqa: E402

WHEEL = "recbole-1.2.1-py3-none-any.whl"
INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"
ITEM = "recbole/dataset_example/ml-100k/ml-100k.item"


def wheel_path():
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "omnirec-quality"
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "recbole==1.2.1", "--no-deps", "-d", str(cache)],
            check=True,
        )
    return wheel


def atomic(header):
    """RecBole headers name `field:type`; the field names alone."""
    return [c.split(":")[0] for c in header.split("\t")]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path()) as wheel:
        inter = wheel.read(INTER).decode("utf-8").splitlines()
        item = wheel.read(ITEM).decode("utf-8").splitlines()

    # ml-100k.inter: user_id:token item_id:token rating:float timestamp:float
    columns = atomic(inter[0])
    u, i, r, t = (columns.index(c) for c in ("user_id", "item_id", "rating", "timestamp"))
    header = "user_id\titem_id\tvalue\ttimestamp"
    rows = []
    for line in inter[1:]:
        if line.strip():
            f = line.split("\t")
            rows.append([f[u], f[i], str(int(float(f[r]))), str(int(float(f[t])))])
    holdout.write_rows(out / "ratings.tsv", header, rows)

    # ml-100k.item: item_id:token movie_title:token_seq release_year:token class:token_seq,
    # the genres space-separated single words ("Children's", "Film-Noir", "Sci-Fi", ...).
    columns = atomic(item[0])
    i_col, title_col, genre_col = (columns.index(c) for c in ("item_id", "movie_title", "class"))
    with open(out / "items.tsv", "w", encoding="utf-8") as f:
        f.write("item_id\ttitle\tcategories\n")
        for line in item[1:]:
            if line.strip():
                fields = line.split("\t")
                genres = [g for g in fields[genre_col].split() if g != "unknown"]
                f.write(f"{fields[i_col]}\t{fields[title_col].strip()}\t{'|'.join(genres)}\n")

    train, test = holdout.split(header, rows, 0.2)
    holdout.write_rows(out / "train.tsv", header, train)
    holdout.write_rows(out / "test.tsv", header, test)
    fit, valid = holdout.split(header, train, 0.2)
    holdout.write_rows(out / "train_fit.tsv", header, fit)
    holdout.write_rows(out / "valid.tsv", header, valid)
    n_users = len({row[0] for row in rows})
    n_items = len({row[1] for row in rows})
    print(
        f"MovieLens 100k: {len(rows)} ratings, {n_users} persons, {n_items} items -> {out}: "
        f"train {len(train)}, test {len(test)}, train_fit {len(fit)}, valid {len(valid)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
