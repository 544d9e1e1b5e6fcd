"""Structured logs: every line says which request (its X-Request-ID, carried into the tasks it queued by
django-guid's Celery integration), which task and which match job it belongs to.

RESIGHT_LOG_FORMAT=json writes one JSON object per line (python-json-logger) for log collectors; the
default is the same fields as text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

_job_id: ContextVar[int | None] = ContextVar("resight_job_id", default=None)

FIELDS = ("asctime", "levelname", "process", "name", "correlation_id", "task_id", "job_id", "message")
JSON_FORMAT = " ".join(f"%({field})s" for field in FIELDS)  # python-json-logger takes its keys from it
TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(process)d %(name)s "
    "request=%(correlation_id)s task=%(task_id)s job=%(job_id)s %(message)s"
)


@contextlib.contextmanager
def job(job_id: int) -> Iterator[None]:
    """Lines logged inside carry the match job's id."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class Context(logging.Filter):
    """Adds task_id (the Celery task this line runs in, if any) and job_id, "-" where there is none, so
    that text and JSON lines have the same fields on every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from celery import current_task  # the web tier has no task; Celery is imported there anyway

        task = current_task.request.id if current_task else None
        record.task_id = task or "-"
        record.job_id = _job_id.get() or "-"
        if not getattr(record, "correlation_id", None):
            record.correlation_id = "-"
        return True
