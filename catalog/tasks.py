"""Celery tasks of bulk uploads (queue `bulk`): thin and id-based; catalog.bulk does the work and makes
each task safe to run twice, so a redelivered or re-enqueued task resumes where a killed worker stopped."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from catalog import drafts
from catalog.bulk import check, importing, receive
from catalog.models import BatchState, UploadBatch
from resight.conf.celery import serves

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def check_batch(batch_id: int) -> None:
    check.run(batch_id)


@shared_task(acks_late=True)
def import_batch(batch_id: int) -> None:
    importing.run(batch_id)


@shared_task(acks_late=True)
def purge_abandoned_batches() -> None:
    """Celery beat: staged photos of uploads left unimported for RESIGHT_UPLOAD_RETENTION_DAYS go, and
    photos kept for a New sighting not sent again within a day."""
    days = settings.RESIGHT_UPLOAD_RETENTION_DAYS
    purged = receive.purge_abandoned(dt.timedelta(days=days))
    if purged:
        logger.info("removed the staged photos of uploads untouched for %s days: %s", days, purged)
    # And photos kept between two tries of a New sighting that was never sent again.
    if removed := drafts.purge():
        logger.info("removed %s photos kept for forms never sent again", removed)


@worker_ready.connect
def _resume_batches(sender: object = None, **kwargs: object) -> None:
    # A worker killed mid-batch leaves it checking or importing; running the task again is harmless (items
    # are locked one by one and skipped once done), so every unfinished batch is simply enqueued again,
    # by the bulk worker only (not once per worker of the platform).
    if not serves(sender, "bulk"):
        return
    for batch_id, state in UploadBatch.objects.filter(
        state__in=(BatchState.VALIDATING, BatchState.IMPORTING, BatchState.MATCHING)
    ).values_list("pk", "state"):
        task = check_batch if state == BatchState.VALIDATING else import_batch
        task.delay(batch_id)
        logger.info("resumed upload batch %s (%s)", batch_id, state)
