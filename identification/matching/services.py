"""Starting match jobs: the projects searched are the ones the photo's project may be matched against,
whoever asks; the filters are checked where the job is made."""

from __future__ import annotations

from typing import Any

from celery import current_app as celery_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Annotation
from identification.matching import calibration, spaces
from identification.models import MatchJob
from resight.permissions import Action, AnyUser, projects_matched_from, require, user_or_none

# Match filters: a window of days around the sighting, a radius around its place (the earth's half
# circumference covers every place), and whether only the same viewpoint is compared.
MAX_FILTER_DAYS = 365 * 200


MAX_FILTER_RADIUS_KM = 20_038.0


def validated_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The match filters as stored: known keys, finite numbers in range (a window of 1e308 days is no
    window: it overflows), a boolean for same_viewpoint."""
    unknown = set(filters) - {"days", "radius_km", "same_viewpoint", "same_body_part"}
    if unknown:
        raise ValidationError({"filters": [f"Unknown filters: {', '.join(sorted(unknown))}."]})
    limits = {"days": MAX_FILTER_DAYS, "radius_km": MAX_FILTER_RADIUS_KM}
    for key, limit in limits.items():
        value = filters.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= limit:
            raise ValidationError({"filters": [f"{key} must be a number above 0 and at most {limit:g}."]})
    for key in ("same_viewpoint", "same_body_part"):
        if not isinstance(filters.get(key, True), bool):
            raise ValidationError({"filters": [f"{key} must be true or false."]})
    return {k: v for k, v in filters.items() if v is not None}


def match_job_start(
    *, actor: AnyUser, annotation: Annotation, filters: dict[str, Any] | None = None
) -> MatchJob:
    """Queue a job matching `annotation` against every catalogue its project may be matched against."""
    require(actor, annotation, Action.CONTRIBUTE)
    project_ids = projects_matched_from(annotation.media_asset.project, annotation.species_id)
    job = MatchJob.objects.create(
        annotation=annotation,
        requested_by=user_or_none(actor),
        space=spaces.active_space(),
        # Species identified by global embeddings alone skip the local re-rank.
        matcher=calibration.matcher_for(annotation.species),
        shortlist_size=settings.RESIGHT_SHORTLIST,
        project_ids=project_ids,
        filters=validated_filters(filters or {}),
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    # By name, through the routes (settings.CELERY_TASK_ROUTES): the tasks module imports this one.
    celery_app.send_task("identification.tasks.run_match_job", args=[job_id])


# What "search without this filter" changes in a job's filters, by the name the search report uses.
WIDEN: dict[str, dict[str, Any]] = {
    "viewpoint": {"same_viewpoint": False},
    "body_part": {"same_body_part": False},
    "radius": {"radius_km": None},
    "days": {"days": None},
}


def match_job_widen(*, actor: AnyUser, job: MatchJob, without: str) -> MatchJob:
    """The same annotation searched again without one of the job's filters (named as in its report)."""
    if without not in WIDEN:
        raise ValidationError({"without": [f"One of: {', '.join(WIDEN)}."]})
    filters = {**(job.filters or {}), **WIDEN[without]}
    return match_job_start(actor=actor, annotation=job.annotation, filters=filters)
