"""The cluster configuration, run for real: one for the module's tests (it takes a minute to start), stopped
after them so that its dozen processes do not slow the rest of the suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from resight.conf.cluster import Cluster, ClusterConfig
from tests.cluster.client import Api
from tests.folders import server_folder


def skip_without_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("the cluster tests need redis-server (Debian: redis-server)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    skip_without_redis()
    # RESIGHT_JOB_LEASE_SECONDS short: a job whose worker died is taken over by the next recovery round.
    with server_folder("resight-cluster-") as root:
        config = ClusterConfig(root, extra_env={"RESIGHT_JOB_LEASE_SECONDS": "20"})
        running = Cluster(config)
        try:
            running.up()
        except Exception:
            running.stop()
            raise
        yield running
        running.stop()


@pytest.fixture
def cluster_folder() -> Iterator[Path]:
    """The folder of a test's own cluster."""
    skip_without_redis()
    with server_folder("resight-cluster-") as root:
        yield root


@pytest.fixture
def curator(cluster: Cluster) -> Api:
    return Api.signed_in(cluster.url, "curator")
