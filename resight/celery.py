"""The Celery app. Queues by workload: `interactive` (match jobs a curator waits for), `bulk` (embeddings and
features of new photos, re-embedding), `training`. Interactive work never waits behind bulk work because each
queue gets its own worker process (see the serve command and docker/compose.yaml)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.settings")

app = Celery("resight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def serves(worker: object, queue: str) -> bool:
    """Whether the worker a `worker_ready` signal is about consumes `queue` (unknown: assume so). Recovery
    hooks use it so that, with one worker per queue, only the workload's own worker re-enqueues its work."""
    consumer = getattr(worker, "task_consumer", None)
    queues = {q.name for q in getattr(consumer, "queues", [])}
    return not queues or queue in queues
