"""Load on the scaled-out configuration: the cluster of resight.conf.cluster (PostgreSQL over TCP, Redis,
gunicorn, Celery workers) under locust's headless load (benchmarks/locustfile.py), on this machine.

    pip install -e '.[load]'
    python -m benchmarks.load --users 20 --seconds 60

Prints requests/s, p50/p95/p99 and errors for page reads, API reads and writes, then matches per minute
with one and with two interactive workers (the same cluster, the second worker started between the two
measurements: the ratio is the scale-out). The load tool runs on the same machine as the cluster.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import django
import numpy as np

from resight.conf.cluster import Cluster, ClusterConfig
from resight.health import queue_depth

django.setup()  # the API client draws the demo's synthetic photos (catalog), it uses no database

from tests.cluster.client import Api  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _queue_empty(cluster: Cluster, queue: str) -> bool:
    from celery import Celery

    return not queue_depth(queue, Celery(broker=cluster.broker_url, set_as_current=False))


def load(cluster: Cluster, users: int, seconds: int, folder: Path) -> dict[str, list[float]]:
    samples = folder / "samples.json"
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "benchmarks" / "locustfile.py"), "--headless",
         "--users", str(users), "--spawn-rate", str(max(1, users // 5)), "--run-time", f"{seconds}s",
         "--host", cluster.url, "--only-summary", "--reset-stats", "--loglevel", "WARNING"],
        cwd=REPO, env=cluster.env() | {"LOAD_SAMPLES": str(samples)}, check=True,
    )  # fmt: skip
    return json.loads(samples.read_text())


def post_jobs(cluster: Cluster, jobs: int) -> None:
    """Match jobs posted back to back (not waited for): the matching work that runs beside the load."""
    if not jobs:
        return
    curator = Api.signed_in(cluster.url, "curator")
    for i in range(jobs):
        curator.match(curator.new_photo_of_demo_individual(i % 4, seed=400_000 + i)["id"])


def matches_per_minute(cluster: Cluster, jobs: int, seed: int) -> float:
    curator = Api.signed_in(cluster.url, "curator")
    started = time.monotonic()
    ids = [
        curator.match(curator.new_photo_of_demo_individual(i % 4, seed=seed + i)["id"])["id"]
        for i in range(jobs)
    ]
    finished = [curator.wait_final(job_id, timeout=1800) for job_id in ids]
    minutes = (time.monotonic() - started) / 60
    assert all(job["state"] == "done" for job in finished), [j["error"] for j in finished]
    return jobs / minutes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument(
        "--jobs", type=int, default=12, help="match jobs per worker count (0: measure the load only)"
    )
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="match jobs posted while the load runs, so that the interactive worker is busy meanwhile",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resight-load-") as root:
        config = ClusterConfig(
            Path(root), web_processes=args.web_processes, workers={"interactive": 1, "bulk": 1, "training": 1}
        )
        cluster = Cluster(config)
        try:
            cluster.up()
            while not _queue_empty(cluster, "bulk"):  # the demo's photos embedded: load on a settled cluster
                time.sleep(1)
            busy = threading.Thread(target=post_jobs, args=(cluster, args.busy), daemon=True)
            busy.start()
            samples = load(cluster, args.users, args.seconds, Path(root))
            busy.join()
            if args.jobs:
                one = matches_per_minute(cluster, args.jobs, seed=200_000)
                cluster.start_worker("interactive", 2)
                config.workers["interactive"] = 2
                cluster.wait_ready()
                two = matches_per_minute(cluster, args.jobs, seed=300_000)
        finally:
            cluster.stop()

    print(
        f"\n{args.users} users for {args.seconds} s (measured after the ramp-up and sign-ins), "
        f"{args.web_processes} gunicorn processes x {config.web_threads} threads, locust on this machine, "
        f"{args.busy} match jobs posted meanwhile\n"
    )
    print("| requests | count | req/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    steady = args.seconds - args.users / max(1, args.users // 5)  # after the ramp-up (users / spawn rate)
    for kind, label in (("page", "page reads"), ("api", "API reads"), ("write", "writes")):
        times = np.array(samples.get(kind, [0.0]))
        p50, p95, p99 = np.percentile(times, [50, 95, 99])
        rate = len(times) / steady
        print(f"| {label} | {len(times)} | {rate:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} |")
    print(f"\nerrors: {len(samples.get('errors', []))}\n")
    print("| page | count | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    for name in sorted(n for n in samples if n.startswith("page:")):
        p50, p95 = np.percentile(samples[name], [50, 95])
        print(f"| {name.removeprefix('page: ')} | {len(samples[name])} | {p50:.0f} | {p95:.0f} |")
    if not args.jobs:
        return
    print("\n| interactive workers | matches/min | ratio |")
    print("|---|---|---|")
    print(f"| 1 | {one:.1f} | 1.00 |")
    print(f"| 2 | {two:.1f} | {two / one:.2f} |")


if __name__ == "__main__":
    main()
