"""The Python baseline for `benches/loadtest.sh`: FastAPI + uvicorn + NumPy serving the
same ALS factors as the omnirec artifact (exported with `trainer inspect --export-als`).

GET /v1/users/{user_id}/recommendations?k=10 scores all items with one dot product, drops
the person's consumed items and takes the top k with argpartition. Unknown persons get
the most popular items. This is deliberately the simplest fast Python service; omnirec
does more per request (five models blended, business rules, explanations).

    OMNIREC_EXPORT=DIR python3 serve_fastapi.py PORT [WORKERS]

WORKERS defaults to 2 (one process per core of the benchmark machines), each with its own
socket on the port (SO_REUSEPORT).
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


def serve(port: int) -> None:
    """One worker process: its own listening socket on the shared port (SO_REUSEPORT), so
    the kernel spreads connections over the workers evenly. uvicorn's own `workers=2`
    shares one socket, and whichever process woke first often accepted most connections:
    one busy process and one idle, 1,800 requests/s in some runs and 2,700 in others,
    against a steady 3,800 this way. TCP_NODELAY set on the listening socket is inherited by
    every connection (without it each answer waited 40 ms for a delayed ACK). A `def`
    endpoint (run in FastAPI's thread pool) served about 4 % more than an `async def` one."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    import multiprocessing

    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    import signal

    processes = [multiprocessing.Process(target=serve, args=(port,)) for _ in range(workers)]
    for process in processes:
        process.start()

    def stop(*_):
        for process in processes:
            process.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()
