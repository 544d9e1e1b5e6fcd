"""docker/compose.yaml and the Dockerfile say what the cluster tests run (resight.conf.cluster): the same
queues, worker options, shutdown behaviour and web server settings."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from resight.conf.celery import WORKER_ENV, worker_command
from resight.health import QUEUES

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_every_queue_has_two_workers_started_as_the_platform_starts_them() -> None:
    services = compose()["services"]
    for queue in QUEUES:
        service = services[f"worker-{queue}"]
        assert service["deploy"]["replicas"] >= 2
        # The platform's own command line, without the interpreter, pool and log level (Docker's defaults).
        ours = worker_command(queue, name=queue)[2:]
        for option in ("--pool", "--loglevel"):
            index = ours.index(option)
            del ours[index : index + 2]
        assert service["command"] == ours
        assert service["restart"] == "unless-stopped"


def test_sigterm_is_a_soft_shutdown_everywhere() -> None:
    env = compose()["x-env"]
    assert {k: env[k] for k in WORKER_ENV} == WORKER_ENV
    assert compose()["services"]["beat"]["deploy"]["replicas"] == 1


def test_the_image_serves_with_the_clusters_gunicorn_settings() -> None:
    cmd = next(line for line in (DOCKER / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert "python:resight.conf.gunicorn" in cmd and "resight.conf.wsgi:application" in cmd
    cluster = (Path(__file__).resolve().parents[1] / "resight" / "conf" / "cluster.py").read_text()
    assert '"python:resight.conf.gunicorn"' in cluster
    # Redis keeps queued messages over a restart, as in the tests' cluster.
    redis = shlex.join(compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in redis and "--appendfsync always" in redis
