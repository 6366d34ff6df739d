"""The Python baseline for `benches/loadtest.sh`: FastAPI + uvicorn + NumPy serving the
same ALS factors as the omnirec artifact (exported with `trainer inspect --export-als`).

GET /v1/users/{user_id}/recommendations?k=10 scores all items with one dot product, drops
the person's consumed items and takes the top k with argpartition. Unknown persons get
the most popular items. This is deliberately the simplest fast Python service; omnirec
does more per request (five models blended, business rules, explanations).

    OMNIREC_EXPORT=DIR python3 serve_fastapi.py PORT [WORKERS]

WORKERS defaults to 2 (one process per core of the benchmark machines).
"""

import os
import sys

import numpy as np
import uvicorn
from fastapi import FastAPI

export = os.environ["OMNIREC_EXPORT"]
users = open(f"{export}/users.txt").read().split("\n")[:-1]
items = open(f"{export}/items.txt").read().split("\n")[:-1]
user_factors = np.fromfile(f"{export}/user_factors.f32", dtype="<f4").reshape(len(users), -1)
item_factors = np.fromfile(f"{export}/item_factors.f32", dtype="<f4").reshape(len(items), -1)
user_index = {u: i for i, u in enumerate(users)}
consumed = [[] for _ in users]
popularity = np.zeros(len(items), dtype=np.float32)
for line in open(f"{export}/consumed.tsv"):
    u, i = line.split("\t")
    consumed[int(u)].append(int(i))
    popularity[int(i)] += 1
popular = np.argsort(-popularity)
consumed = [np.array(c, dtype=np.int64) for c in consumed]

app = FastAPI()


@app.get("/v1/users/{user_id}/recommendations")
def recommend(user_id: str, k: int = 10, placement: str = ""):
    u = user_index.get(user_id)
    if u is None:
        top = popular[:k]
        scores = popularity[top]
        personalized = False
    else:
        scores_all = item_factors @ user_factors[u]
        scores_all[consumed[u]] = -np.inf
        top = np.argpartition(-scores_all, k)[:k]
        top = top[np.argsort(-scores_all[top])]
        scores = scores_all[top]
        personalized = True
    return {
        "personalized": personalized,
        "items": [{"item_id": items[i], "score": float(s)} for i, s in zip(top, scores)],
    }


if __name__ == "__main__":
    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    uvicorn.run(
        "serve_fastapi:app", host="127.0.0.1", port=port, workers=workers, log_level="warning", access_log=False
    )
