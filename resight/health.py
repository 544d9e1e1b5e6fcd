"""Health endpoints for load balancers, orchestrators and monitoring (no sign-in, nothing private).

- /health/live/: the web process answers (it touches nothing else, so a database outage never makes an
  orchestrator restart healthy web processes).
- /health/ready/: whether this instance can do its work: the database answers, the broker takes messages,
  every queue has a worker, and the media storage has room. 200 when all hold, 503 with the failing checks
  otherwise; the JSON body says which.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import current_app as app
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# The workloads, one queue each (CELERY_TASK_ROUTES sends each task to one of them).
QUEUES = ("interactive", "bulk", "training")


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: Any


def database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Check(True, "answers")


def broker() -> Check:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return Check(True, "connected")


def workers() -> Check:
    """How many workers consume each queue. Celery's remote control asks every worker (the prefork pool's
    main process answers also while a task runs) and waits its whole timeout for answers, so the count is
    kept a few seconds: probes and monitoring polling every second must not each hold a server thread."""
    counts = cache.get_or_set(
        WORKER_COUNTS_KEY, _count_workers, timeout=WORKER_COUNTS_TTL_S
    ) or dict.fromkeys(QUEUES, 0)
    return Check(all(counts.values()), counts)


WORKER_COUNTS_KEY = "resight:health:workers"
WORKER_COUNTS_TTL_S = 5


def _count_workers() -> dict[str, int]:
    replies = app.control.inspect(timeout=settings.RESIGHT_HEALTH_WORKER_TIMEOUT_S).active_queues() or {}
    counts = dict.fromkeys(QUEUES, 0)
    for queues in replies.values():
        for queue in queues:
            if queue["name"] in counts:
                counts[queue["name"]] += 1
    return counts


def queue_depth(queue: str, celery: Any = None) -> int:
    """Messages waiting in `queue` on the broker (of `celery`, else the platform's app)."""
    with (celery or app).connection_for_read() as conn:
        try:
            _, messages, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        except conn.channel_errors:  # Redis keeps no empty queue: "no queue 'interactive'" means empty
            return 0
    return int(messages)


def media_disk() -> Check:
    """Free space where uploads are stored (local storage only: an object store has no disk to fill)."""
    if not isinstance(default_storage, FileSystemStorage):
        return Check(True, "object storage")
    folder = Path(settings.MEDIA_ROOT)
    while not folder.exists():  # a new install makes the folder at its first upload
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    return Check(free >= settings.RESIGHT_MIN_FREE_MEDIA_BYTES, {"free_bytes": free})


CHECKS: dict[str, Callable[[], Check]] = {
    "database": database,
    "broker": broker,
    "workers": workers,
    "media_disk": media_disk,
}


def _run(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # a check that cannot run has failed; say why, never answer 500
        return Check(False, f"{type(exc).__name__}: {exc}"[:300])


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    results = {name: _run(check) for name, check in CHECKS.items()}
    ok = all(result.ok for result in results.values())
    body = {
        "status": "ok" if ok else "failing",
        "checks": {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()},
        "took_ms": round(1000 * (time.monotonic() - started)),
    }
    return JsonResponse(body, status=200 if ok else 503)
