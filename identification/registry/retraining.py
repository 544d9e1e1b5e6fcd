"""Retraining from curated identities: the loop that turns curators' decisions into a better model.

    enough newly identified annotations (beat, `check`) -> a TrainingRun
    -> export the curated crops (masked and mirrored as matching sees them)
    -> ml_service.retrain, the path `python -m ml_service.finetune` takes too: the paper's split, fine-tuning
       (ml_service.training, checkpointed every epoch), the active and the candidate model scored per species
       on the same test set
    -> candidate better by RESIGHT_RETRAIN_MIN_GAIN: a new embedding space, the catalogue re-embedded in the
       background while matching keeps using the active space, then one atomic switch and the fusion
       calibration refitted; otherwise the run is rejected and nothing changes.

This module is what the web tier and beat call (start a run, count what is curated); the steps run in the
training worker, in `identification.registry.trainer`, which alone imports the training code (torch).

Every step is safe to run again: a worker killed mid-run is re-enqueued when workers start, training resumes
from its last checkpoint, re-embedding from the annotations still missing, and the active space only changes
in the final switch. Older spaces keep their vectors, so rolling back is one switch (`activate`).
"""

from __future__ import annotations

import logging

from celery import current_app as celery_app
from django.conf import settings
from django.db import connection, transaction

from catalog.models import Annotation
from identification.matching import jobs, spaces
from identification.models import RUN_WORKING_STATES, RunState, TrainingRun
from resight import audit
from resight.permissions import AnyUser, require_operator, user_or_none

logger = logging.getLogger(__name__)
RUN_LOCK = 0x7265_7369  # any constant shared by every process of the platform


def curated() -> int:
    return Annotation.objects.filter(individual__isnull=False).count()


def newly_curated() -> int:
    """Identified annotations beyond those the last (not failed) run trained on."""
    last = TrainingRun.objects.exclude(state=RunState.FAILED).order_by("-created_at").first()
    return curated() - (last.curated_annotations if last else 0)


def start(*, trigger: str, actor: AnyUser | None = None, force: bool = False) -> TrainingRun | None:
    """A new run when enough was curated since the last (or `force`d), unless one is in progress. Started
    by Celery beat (no actor) or by an operator."""
    if actor is not None:
        require_operator(actor)
    with transaction.atomic():
        # One run at a time: a transaction-scoped advisory lock makes two beat ticks (or a tick and a click)
        # agree even when no run row exists yet to lock.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_LOCK])
        if TrainingRun.objects.filter(state__in=RUN_WORKING_STATES).exists():
            return None
        if not force and newly_curated() < settings.RESIGHT_RETRAIN_THRESHOLD:
            return None
        run = TrainingRun.objects.create(
            trigger=trigger,
            requested_by=user_or_none(actor),
            curated_annotations=curated(),
            compared_with=spaces.active_space(),
        )
        audit.record(actor=actor, action="training_run.start", obj=run, changes={"trigger": trigger})
        transaction.on_commit(lambda: _enqueue_training(run.pk))
    return run


def _enqueue_training(run_id: int) -> None:
    # By name, through the routes (settings.CELERY_TASK_ROUTES): the tasks module imports this one.
    celery_app.send_task("identification.tasks.run_training", args=[run_id])


def release_dead_claims() -> list[int]:
    """Runs held by a process of this host that is gone (a killed worker): free them to be resumed."""
    freed = []
    for run in TrainingRun.objects.filter(state__in=RUN_WORKING_STATES).exclude(claimed_by=""):
        if jobs.holder_is_dead(run.claimed_by):
            TrainingRun.objects.filter(pk=run.pk, claimed_by=run.claimed_by).update(claimed_by="")
            freed.append(run.pk)
    return freed
