"""Celery tasks: thin, id-based, idempotent. The work lives in the matching and registry packages."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from celery.signals import worker_process_init, worker_ready
from django.conf import settings

from catalog import services as catalog_services
from catalog.models import Annotation, MediaAsset, Species
from identification.matching import calibration, crops, freshness, jobs, loaded, pipeline, spaces, store
from identification.models import RUN_WORKING_STATES, TrainingRun
from identification.registry import retraining
from resight import health, logs
from resight.conf.celery import serves

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def run_match_job(job_id: int) -> None:
    with logs.job(job_id):
        pipeline.run(job_id)


@shared_task(acks_late=True)
def refresh_candidates(individual_ids: list[int]) -> None:
    """An individual was created, confirmed, merged or split: the undecided jobs it could change are
    re-ranked (matching.freshness)."""
    freshness.refresh_for(individual_ids)


@shared_task(acks_late=True)
def rerank_job(job_id: int) -> None:
    """A curator asked for a job's list to be ranked again."""
    with logs.job(job_id):
        pipeline.rerank(job_id)


@shared_task(acks_late=True)
def prepare_annotation(annotation_id: int, redo: bool = False) -> None:
    """Embedding and local features of a new or changed annotation, computed ahead of any search; what is
    stored already is kept, unless `redo` (its box or its species' matching settings changed)."""
    annotation = Annotation.objects.select_related("media_asset").filter(pk=annotation_id).first()
    if annotation is None:
        return
    space = spaces.active_space()
    if redo:
        # Not for a new annotation: a match job may have stored its features already and be reading them (a
        # demo or bulk photo is a gallery member at once). Readers of a redone one extract them again.
        store.forget(annotation)
    decoded = crops.Crops()
    try:
        store.embed([annotation], space, crops=decoded)
        if settings.RESIGHT_LOCAL_MATCHER:
            matcher = loaded.local_matcher(settings.RESIGHT_LOCAL_MATCHER)
            store.local_features_of(annotation, matcher, decoded)
    except crops.PhotoUnreadable:
        logger.warning("annotation %s: photo unreadable, not embedded", annotation_id)


@shared_task(acks_late=True)
def propose_boxes(media_asset_id: int) -> None:
    """Animal boxes proposed by the configured detector, kept with the photo for curators to accept."""
    spec = settings.RESIGHT_DETECTOR
    asset = MediaAsset.objects.filter(pk=media_asset_id).first()
    if asset is None or not spec:
        return
    model = loaded.detector(spec)
    if asset.proposals_by == model.key:
        return  # done already (a redelivered task)
    try:
        image = crops.photo(asset)
    except crops.PhotoUnreadable:
        logger.warning("photo %s unreadable: no box proposals", media_asset_id)
        return
    (found,) = model.detect([image], min_confidence=settings.RESIGHT_DETECTOR_MIN_CONFIDENCE)
    proposals = [{"box": list(d.box), "label": d.label, "confidence": round(d.confidence, 3)} for d in found]
    catalog_services.media_asset_set_proposals(asset=asset, proposals=proposals, source=model.key)


@shared_task(acks_late=True)
def refit_calibration(species_id: int) -> None:
    species = Species.objects.filter(pk=species_id).first()
    if species is None:
        return  # deleted since
    space = spaces.active_space()
    matcher = calibration.matcher_for(species)  # the one its jobs use ("" where id_method is global)
    if calibration.needs_refit(species_id, space, matcher):
        calibration.refit(species_id, space, matcher)


@worker_process_init.connect
def _one_thread_per_worker_process(**kwargs: object) -> None:
    # Several worker processes share two cores; intra-op threads on top of that only thrash. Imported here:
    # beat imports this module too, and never runs a model.
    import torch

    torch.set_num_threads(1)


@worker_ready.connect
def _recover_orphaned_jobs(**kwargs: object) -> None:
    recovered = jobs.recover_orphaned(
        lambda job_id: run_match_job.delay(job_id), queued_older_than=dt.timedelta(seconds=30)
    )
    if recovered:
        logger.info("re-enqueued match jobs left by a stopped worker: %s", recovered)


@shared_task(acks_late=True)
def recover_jobs() -> None:
    """Celery beat, every RESIGHT_JOB_RECOVERY_SECONDS: a running platform takes stranded jobs over without
    waiting for a worker to restart. A job whose lease ran out is enqueued again; a queued job only when the
    queue holds no message at all, i.e. its message was lost (a broker restarted without its data), since a
    long queue is no reason to enqueue its jobs twice."""
    lost = None
    if not health.queue_depth("interactive"):
        lost = dt.timedelta(seconds=settings.RESIGHT_JOB_RECOVERY_SECONDS)
    recovered = jobs.recover_orphaned(lambda job_id: run_match_job.delay(job_id), queued_older_than=lost)
    if recovered:
        logger.warning("re-enqueued stranded match jobs: %s", recovered)


@shared_task(acks_late=True)
def check_retraining() -> None:
    """Celery beat: start a training run when enough was curated since the last one."""
    run = retraining.start(trigger="threshold")
    if run is not None:
        logger.info("training run %s started: %s annotations identified", run.pk, run.curated_annotations)


@shared_task(acks_late=True)
def run_training(run_id: int) -> None:
    # Imported by the training worker when it runs: beat and the web tier import this module, and the
    # trainer imports the training code (torch).
    from identification.registry import trainer

    trainer.run(run_id)


@shared_task(acks_late=True)
def reembed_space(space_id: int) -> None:
    """An operator adopted a published model: embed the catalogue into its space, then switch to it (a rerun
    continues with the annotations still missing)."""
    spaces.reembed_or_record(space_id)


@worker_ready.connect
def _resume_training(sender: object = None, **kwargs: object) -> None:
    # Only the worker that serves the training queue picks runs up again (training resumes from its last
    # checkpoint; re-embedding from the annotations still missing).
    if not serves(sender, "training"):
        return
    freed = retraining.release_dead_claims()
    stale = TrainingRun.objects.filter(state__in=RUN_WORKING_STATES, claimed_by="")
    for run_id in stale.values_list("pk", flat=True):
        run_training.delay(run_id)
    if freed:
        logger.info("resumed training runs left by a stopped worker: %s", freed)
