"""Streaming holdout of a large interactions TSV for the ALS comparison: a deterministic
sample of persons (those whose id hashes into the first 1/every of the range, by CRC-32)
each hold out the share of their rows that holdout.py would hold out
(clamp(floor(fraction * n + 0.5), 1, n - 1), chosen by a seeded shuffle); every other row
stays in train. Two passes over the file, memory only for the sampled persons, so a
20M-row file splits without loading it.

    python3 sample_holdout.py IN.tsv TRAIN.tsv TEST.tsv [--every 25] [--fraction 0.2] [--seed 42]
"""
import argparse
import random
import zlib

from holdout import n_held_out


def sampled(person, every):
    return zlib.crc32(person.encode()) % every == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    counts = {}
    with open(args.input, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n")
        u_col = header.split("\t").index("user_id")
        for line in f:
            person = line.split("\t", u_col + 1)[u_col]
            if sampled(person, args.every):
                counts[person] = counts.get(person, 0) + 1
    held = {}
    for person, n in counts.items():
        positions = list(range(n))
        random.Random(f"{args.seed}:{person}").shuffle(positions)
        held[person] = set(positions[n - n_held_out(n, args.fraction):])
    seen = dict.fromkeys(counts, 0)
    n_train = n_test = 0
    with open(args.input, encoding="utf-8") as f, open(args.train, "w", encoding="utf-8") as train, open(
        args.test, "w", encoding="utf-8"
    ) as test:
        f.readline()
        train.write(header + "\n")
        test.write(header + "\n")
        for line in f:
            person = line.split("\t", u_col + 1)[u_col]
            if person in seen:
                position = seen[person]
                seen[person] = position + 1
                if position in held[person]:
                    test.write(line)
                    n_test += 1
                    continue
            train.write(line)
            n_train += 1
    print(f"{args.input}: {len(counts)} sampled persons; {n_train} train rows, {n_test} test rows")


if __name__ == "__main__":
    main()
