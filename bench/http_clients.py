"""Concurrent HTTP clients for ``bench.writes``' API stage, run in a process of their own (so their
CPU is not the web process's): ``python -m bench.http_clients URL TOKEN BODIES.json THREADS``.

Each thread keeps one ``requests.Session`` (keep-alive, token auth) and POSTs its share of the
bodies to ``URL``, one at a time; a few requests a thread first, untimed, to open its connection
and warm the web process. Prints one JSON object: the creates, the seconds from the first timed
request to the last answer, this process's CPU seconds meanwhile, and each request's latency in
milliseconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import requests

WARM = 3  # untimed requests a thread, before the clock starts


def drive(url: str, token: str, bodies: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    shares = [bodies[i::threads] for i in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    ready = threading.Barrier(threads + 1)

    def client(index: int) -> None:
        with requests.Session() as session:
            session.headers.update({"Authorization": f"Token {token}", "Host": "localhost"})
            share = shares[index]
            for body in share[:WARM]:
                _post(session, url, {**body, "id": f"warm-{body['id']}"}, errors)
            ready.wait()
            taken = latencies[index]
            for body in share:
                began = time.perf_counter()
                _post(session, url, body, errors)
                taken.append((time.perf_counter() - began) * 1000)

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    started, cpu_began = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_began  # this process's, all its threads
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, the first: {errors[0]}")
    return {
        "creates": len(bodies),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "threads": threads,
        "warm_requests": sum(min(len(share), WARM) for share in shares),
        "latencies_ms": [ms for taken in latencies for ms in taken],
    }


def _post(session: requests.Session, url: str, body: dict[str, Any], errors: list[str]) -> None:
    response = session.post(url, json=body, timeout=60)
    if response.status_code != 201:
        errors.append(f"{response.status_code}: {response.text[:300]}")


def main(argv: list[str]) -> int:
    url, token, path, threads = argv
    with open(path) as file:
        bodies = json.load(file)
    print(json.dumps(drive(url, token, bodies, int(threads))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
