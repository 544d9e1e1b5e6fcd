"""SIGTERM to every process of the cluster at once (what `docker compose stop` and systemd send): all of
them are gone within seconds, also while a worker is busy with a match job, and the job is handed back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from resight.conf.cluster import Cluster, ClusterConfig
from tests.cluster.client import Api

pytestmark = pytest.mark.cluster

STOP_WITHIN_S = 10.0


def test_sigterm_stops_web_workers_and_beat_within_seconds_and_a_busy_job_is_handed_back(
    cluster_folder: Path,
) -> None:
    cluster = Cluster(ClusterConfig(cluster_folder, workers={"interactive": 1, "bulk": 1, "training": 1}))
    try:
        cluster.up()
        curator = Api.signed_in(cluster.url, "curator")
        job = curator.match(curator.new_photo_of_demo_individual(1, seed=61)["id"])
        took = cluster.stop(timeout=2 * STOP_WITHIN_S)
    finally:
        cluster.stop()
    slow = {name: t for name, t in took.items() if t > STOP_WITHIN_S}
    print({name: round(t, 1) for name, t in took.items()})
    assert not slow, f"not gone within {STOP_WITHIN_S} s: {slow}"
    assert not any(math.isinf(t) for t in took.values())

    # Started again, the platform finishes the job that was running or waiting when it stopped.
    cluster.up(demo=False)
    try:
        done = Api.signed_in(cluster.url, "curator").wait_final(job["id"], timeout=300)
    finally:
        cluster.stop()
    assert done["state"] == "done", done["error"]
