"""Celery tasks: thin, id-based, idempotent. The work lives in jobs.py, features.py and calibration.py."""

from __future__ import annotations

import datetime as dt
import logging

import torch
from celery import shared_task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings

from catalog.models import Annotation
from identification import calibration, features, jobs

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def run_match_job(job_id: int) -> None:
    jobs.run(job_id)


@shared_task(acks_late=True)
def prepare_annotation(annotation_id: int) -> None:
    """Embedding and local features of a new or changed annotation, computed ahead of any search."""
    annotation = Annotation.objects.select_related("media_asset").filter(pk=annotation_id).first()
    if annotation is None:
        return
    space = features.active_space()
    features.forget(annotation)  # the vectors and features of its old geometry or settings
    crops = features.Crops()
    try:
        features.embed([annotation], space, crops=crops)
        if settings.RESIGHT_LOCAL_MATCHER:
            features.features(annotation, features.local_matcher(settings.RESIGHT_LOCAL_MATCHER), crops)
    except features.PhotoUnreadable:
        logger.warning("annotation %s: photo unreadable, not embedded", annotation_id)


@shared_task(acks_late=True)
def refit_calibration(species_id: int) -> None:
    space = features.active_space()
    matcher = settings.RESIGHT_LOCAL_MATCHER
    if calibration.needs_refit(species_id, space, matcher):
        calibration.refit(species_id, space, matcher)


@worker_process_init.connect
def _one_thread_per_worker_process(**kwargs: object) -> None:
    # Several worker processes share two cores; intra-op threads on top of that only thrash.
    torch.set_num_threads(1)


@worker_ready.connect
def _recover_orphaned_jobs(**kwargs: object) -> None:
    recovered = jobs.recover_orphaned(
        lambda job_id: run_match_job.delay(job_id), queued_older_than=dt.timedelta(seconds=30)
    )
    if recovered:
        logger.info("re-enqueued match jobs left by a stopped worker: %s", recovered)
