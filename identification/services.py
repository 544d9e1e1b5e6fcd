"""Starting match jobs (on demand and for each new annotation), checked by the permission policy."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from catalog.models import Annotation, IdentificationMethod
from identification import features
from identification.models import MatchJob
from resight.permissions import Action, AnyUser, projects_for, require


def match_job_start(
    *, actor: AnyUser, annotation: Annotation, filters: dict[str, Any] | None = None
) -> MatchJob:
    """Queue a job matching `annotation` against every project `actor` may match against."""
    require(actor, annotation, Action.CONTRIBUTE)
    project_ids = sorted(projects_for(actor, Action.MATCH).values_list("pk", flat=True))
    job = MatchJob.objects.create(
        annotation=annotation,
        requested_by=actor if actor.is_authenticated else None,
        space=features.active_space(),
        # Species identified by global embeddings alone skip the local re-rank.
        matcher=""
        if annotation.species.id_method == IdentificationMethod.GLOBAL
        else settings.RESIGHT_LOCAL_MATCHER,
        shortlist_size=settings.RESIGHT_SHORTLIST,
        project_ids=project_ids,
        filters=filters or {},
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from identification.tasks import run_match_job

    run_match_job.delay(job_id)


def on_annotation_saved(
    *, annotation: Annotation, created: bool, actor: AnyUser, geometry_changed: bool, **kwargs: object
) -> None:
    """New annotations of unknown animals are matched at once; changed geometry is re-embedded."""
    from identification.tasks import prepare_annotation, refit_calibration

    if annotation.individual_id is None and created and actor is not None and actor.is_authenticated:
        with transaction.atomic():
            match_job_start(actor=actor, annotation=annotation)
    elif geometry_changed:
        prepare_annotation.delay(annotation.pk)
    if annotation.individual_id is not None:
        refit_calibration.delay(annotation.species_id)  # a no-op until the curated set grew enough
