"""Match jobs (on demand and for each new annotation) and curators' decisions on them, checked by the
permission policy."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog import services as catalog_services
from catalog.models import Annotation, IdentificationMethod, Individual
from identification import features, review
from identification.models import Decision, DecisionKind, JobState, MatchJob
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


def decide(
    *,
    actor: AnyUser,
    job: MatchJob,
    kind: str,
    candidate_rank: int | None = None,
    new_code: str = "",
    note: str = "",
) -> Decision:
    """Record a curator's decision on a finished job's annotation and apply it (assign or create the
    individual). The decision keeps the candidates, scores and versions that were on screen."""
    annotation = job.annotation
    require(actor, annotation, Action.CURATE)
    choices = [k for k in DecisionKind.values if k != DecisionKind.UNDO]  # undo has its own service
    if kind not in choices:
        raise ValidationError({"kind": [f"One of: {', '.join(choices)}."]})
    if job.state != JobState.DONE and kind in (DecisionKind.CONFIRM, DecisionKind.NOT_THIS_ONE):
        raise ValidationError({"job": ["The job has no candidates yet."]})
    candidate = None
    if kind in (DecisionKind.CONFIRM, DecisionKind.NOT_THIS_ONE):
        candidate = job.candidates.select_related("individual").filter(rank=candidate_rank or 0).first()
        if candidate is None:
            raise ValidationError({"candidate_rank": ["Choose one of the job's candidates."]})
    with transaction.atomic():
        # One decision at a time per annotation: two curators never both apply theirs unseen.
        locked = (
            Annotation.objects.select_for_update()
            .select_related("media_asset", "species")
            .get(pk=annotation.pk)
        )
        previous = locked.individual_id
        if kind == DecisionKind.CONFIRM:
            assert candidate is not None
            catalog_services.annotation_update(
                actor=actor, annotation=locked, changes={"individual": candidate.individual}
            )
        elif kind == DecisionKind.NEW_INDIVIDUAL:
            individual = catalog_services.individual_create(
                actor=actor,
                project=locked.media_asset.project,
                species=locked.species,
                code=new_code.strip() or _next_code(locked),
            )
            catalog_services.annotation_update(
                actor=actor, annotation=locked, changes={"individual": individual}
            )
        shown = [
            {
                "rank": c.rank,
                "individual": c.individual_id,
                "probability": c.probability,
                "band": c.band,
                "global_score": c.global_score,
                "local_score": c.local_score,
            }
            for c in job.candidates.all()
        ]
        if kind != DecisionKind.NOT_THIS_ONE:  # the curator is done with this annotation for now
            review.release(locked)
        return Decision.objects.create(
            annotation=locked,
            job=job,
            kind=kind,
            candidate_rank=candidate_rank if candidate else None,
            individual_id=locked.individual_id,
            previous_individual_id=previous,
            shown=shown,
            model_key=job.space.key,
            matcher_key=job.matcher,
            note=note,
            decided_by=actor if actor.is_authenticated else None,
        )


def _next_code(annotation: Annotation) -> str:
    """A free catalogue code for a new individual: the species' initials and a running number."""
    prefix = "".join(w[0] for w in annotation.species.common_name.split()).upper() or "IND"
    taken = set(
        Individual.objects.filter(
            project=annotation.media_asset.project, code__startswith=f"{prefix}-"
        ).values_list("code", flat=True)
    )
    n = len(taken) + 1
    while f"{prefix}-{n:04d}" in taken:
        n += 1
    return f"{prefix}-{n:04d}"


def undo(*, actor: AnyUser, annotation: Annotation) -> Decision:
    """Revert the latest decision on `annotation`: its identity goes back to what it was before. Recorded as
    a decision of its own; the log itself never changes."""
    require(actor, annotation, Action.CURATE)
    with transaction.atomic():
        locked = (
            Annotation.objects.select_for_update()
            .select_related("media_asset", "species")
            .get(pk=annotation.pk)
        )
        latest = Decision.objects.filter(annotation=locked).order_by("-decided_at", "-id").first()
        if latest is None or latest.kind == DecisionKind.UNDO:
            raise ValidationError(
                {"decision": ["There is no decision to undo (an undo is undone by deciding again)."]}
            )
        if locked.individual_id != latest.individual_id:
            raise ValidationError({"decision": ["The photo's identity changed since that decision."]})
        current = locked.individual_id
        if current != latest.previous_individual_id:
            previous = (
                Individual.objects.filter(pk=latest.previous_individual_id).first()
                if latest.previous_individual_id is not None
                else None
            )
            catalog_services.annotation_update(
                actor=actor, annotation=locked, changes={"individual": previous}
            )
        review.release(locked)
        return Decision.objects.create(
            annotation=locked,
            job=latest.job,
            kind=DecisionKind.UNDO,
            undoes=latest,
            individual_id=locked.individual_id,
            previous_individual_id=current,
            shown=latest.shown,
            model_key=latest.model_key,
            matcher_key=latest.matcher_key,
            decided_by=actor if actor.is_authenticated else None,
        )
