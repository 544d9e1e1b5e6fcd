"""The Celery app. Queues by workload: `interactive` (match jobs a curator waits for), `bulk` (embeddings and
features of new photos, re-embedding), `training`. Interactive work never waits behind bulk work because each
queue gets its own worker process (see the serve command and docker/compose.yaml)."""

from __future__ import annotations

import os
import sys

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.conf.settings")

app = Celery("resight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _yield_cpu_to_the_web(**kwargs: object) -> None:
    # The pool's child runs the tasks; the worker's main process only talks to the broker and stays as it is,
    # so heartbeats and shutdown keep their timing.
    from django.conf import settings

    if settings.RESIGHT_WORKER_NICE:
        os.nice(settings.RESIGHT_WORKER_NICE)


def serves(worker: object, queue: str) -> bool:
    """Whether the worker a `worker_ready` signal is about consumes `queue` (unknown: assume so). Recovery
    hooks use it so that, with one worker per queue, only the workload's own worker re-enqueues its work."""
    consumer = getattr(worker, "task_consumer", None)
    queues = {q.name for q in getattr(consumer, "queues", [])}
    return not queues or queue in queues


# The environment of every worker process. Celery's SIGTERM (what docker stop and systemd send) is a warm
# shutdown that waits for the running task however long it takes; remapped to SIGQUIT, it becomes Celery's
# soft shutdown: RESIGHT_WORKER_SHUTDOWN_SECONDS for the running task to finish, then the task is cancelled
# and its message handed back to the broker (acks_late), so a stop takes seconds and loses nothing. Billiard
# reads it when celery's command line starts, so it cannot be set from here: pass it to the process.
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}


def worker_command(
    queues: str, *, name: str | None = None, pool: str = "prefork", loglevel: str = "INFO"
) -> list[str]:
    """The command line of one worker process on `queues` (the platform's serve command and the tests'
    worker start theirs with it): one task at a time, no gossip or mingle between workers (they share
    nothing but the broker and the database)."""
    command = [sys.executable, "-m", "celery", "-A", "resight", "worker", "-Q", queues]
    if name is not None:
        command += ["-n", f"{name}@%h"]
    return [
        *command,
        "--pool",
        pool,
        "--concurrency",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]
