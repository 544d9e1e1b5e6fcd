"""Match jobs (on demand and for each new annotation) and curators' decisions on them, checked by the
permission policy."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import (
    Annotation,
    IdentificationMethod,
    Individual,
    IndividualStatus,
    MediaAsset,
    Species,
    UploadBatch,
)
from identification import features, review, selectors
from identification.models import (
    Decision,
    DecisionKind,
    IdentityChange,
    IdentityChangeKind,
    JobState,
    MatchJob,
)
from resight import audit
from resight.models import Project
from resight.permissions import Action, AnyUser, End, projects_matched_from, require, require_link

# Match filters: a window of days around the sighting, a radius around its place (the earth's half
# circumference covers every place), and whether only the same viewpoint is compared.
MAX_FILTER_DAYS = 365 * 200
MAX_FILTER_RADIUS_KM = 20_038.0


def validated_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """The match filters as stored: known keys, finite numbers in range (a window of 1e308 days is no
    window: it overflows), a boolean for same_viewpoint."""
    unknown = set(filters) - {"days", "radius_km", "same_viewpoint"}
    if unknown:
        raise ValidationError({"filters": [f"Unknown filters: {', '.join(sorted(unknown))}."]})
    limits = {"days": MAX_FILTER_DAYS, "radius_km": MAX_FILTER_RADIUS_KM}
    for key, limit in limits.items():
        value = filters.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= limit:
            raise ValidationError({"filters": [f"{key} must be a number above 0 and at most {limit:g}."]})
    if not isinstance(filters.get("same_viewpoint", True), bool):
        raise ValidationError({"filters": ["same_viewpoint must be true or false."]})
    return {k: v for k, v in filters.items() if v is not None}


def match_job_start(
    *, actor: AnyUser, annotation: Annotation, filters: dict[str, Any] | None = None
) -> MatchJob:
    """Queue a job matching `annotation` against every catalogue its project may be matched against."""
    require(actor, annotation, Action.CONTRIBUTE)
    project_ids = projects_matched_from(annotation.media_asset.project, annotation.species_id)
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
        filters=validated_filters(filters or {}),
    )
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from identification.tasks import run_match_job

    run_match_job.delay(job_id)


def on_annotation_saved(
    *,
    annotation: Annotation,
    created: bool,
    actor: AnyUser,
    geometry_changed: bool,
    match_now: bool = True,
    **kwargs: object,
) -> None:
    """New annotations of unknown animals are matched at once (bulk uploads: once their batch is in, see
    on_batch_imported), and again when a curator redraws their box; other changed geometry is re-embedded.
    Vectors of an old geometry are dropped at once, so no search meanwhile uses them."""
    from identification.tasks import prepare_annotation, refit_calibration

    if geometry_changed and not created:
        features.forget(annotation)
    if (
        annotation.individual_id is None
        and (created or geometry_changed)
        and match_now
        and actor is not None
        and actor.is_authenticated
    ):
        with transaction.atomic():
            match_job_start(actor=actor, annotation=annotation)
    elif geometry_changed:
        prepare_annotation.delay(annotation.pk)
    if annotation.individual_id is not None:
        refit_calibration.delay(annotation.species_id)  # a no-op until the curated set grew enough


def on_batch_imported(*, batch: UploadBatch, annotation_ids: list[int], **kwargs: object) -> None:
    """Match every unidentified annotation of an upload batch, now that all its siblings are in the
    catalogue. Idempotent: annotations that already have a job are left alone."""
    pending = Annotation.objects.filter(
        pk__in=annotation_ids, individual__isnull=True, match_jobs__isnull=True
    )
    with transaction.atomic():
        for annotation in pending.select_related("species", "media_asset"):
            match_job_start(actor=batch.actor, annotation=annotation)


def on_media_asset_stored(*, media_asset: MediaAsset, **kwargs: object) -> None:
    """With a detector configured, every new photo gets animal boxes proposed."""
    from identification.tasks import propose_boxes

    if settings.RESIGHT_DETECTOR:
        propose_boxes.delay(media_asset.pk)


def on_matching_settings_changed(*, species: Species, **kwargs: object) -> None:
    """Redo the vectors and features of every annotation of the species, in the background."""
    from identification.tasks import prepare_annotation

    for annotation_id in Annotation.objects.filter(species=species).values_list("pk", flat=True):
        prepare_annotation.delay(annotation_id)


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
        if candidate is not None:
            # Individual before annotation, the order merges lock in, so a decision and a merge never
            # deadlock; a merged candidate is then refused when the annotation is assigned.
            _locked(candidate.individual)
        # One decision at a time per annotation: two curators never both apply theirs unseen.
        locked = (
            Annotation.objects.select_for_update(of=("self",))
            .select_related("media_asset", "species")
            .get(pk=annotation.pk)
        )
        previous = locked.individual_id
        if previous is not None and kind in (DecisionKind.CONFIRM, DecisionKind.NEW_INDIVIDUAL):
            # Another curator decided while this one looked (or the photo was identified elsewhere):
            # say so instead of applying a second identity over the first.
            raise ValidationError(
                {
                    "decision": [
                        f"Already decided: this animal was identified as {_code(previous)} (undo that "
                        "decision, or split the individual, to change it)."
                    ]
                }
            )
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
                code=new_code.strip() or _next_code(locked.media_asset.project, locked.species),
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


def _code(individual_id: int) -> str:
    return Individual.objects.filter(pk=individual_id).values_list("code", flat=True).first() or "another"


def _next_code(project: Project, species: Species) -> str:
    """A free catalogue code for a new individual: the species' initials and a running number."""
    prefix = "".join(w[0] for w in species.common_name.split()).upper() or "IND"
    taken = set(
        Individual.objects.filter(project=project, code__startswith=f"{prefix}-").values_list(
            "code", flat=True
        )
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
            Annotation.objects.select_for_update(of=("self",))
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


# Merge and split. Both lock the individuals' rows (in primary-key order, so two merges never deadlock) and
# then the annotations they move, so concurrent merges, splits and decisions serialise: each sees the
# others' committed result, and no annotation is lost or moved twice. Annotation assignments lock the
# individual too (catalog.services), so a photo cannot land on an individual being merged away.


def _locked(*individuals: Individual) -> list[Individual]:
    pks = [i.pk for i in individuals]
    rows = {
        i.pk: i
        for i in Individual.objects.select_for_update(of=("self",))
        .select_related("project", "species")
        .filter(pk__in=pks)
        .order_by("pk")
    }
    return [rows[pk] for pk in pks]


def _lock_annotations(ids: list[int]) -> None:
    # order_by: the default ordering joins nullable relations, which FOR UPDATE refuses.
    list(Annotation.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))


def _move(annotation_ids: list[int], *, source: Individual, target: Individual) -> None:
    moved = Annotation.objects.filter(pk__in=annotation_ids, individual=source).update(
        individual=target, updated_at=timezone.now()
    )
    if moved != len(annotation_ids):
        raise ValidationError(
            {
                "annotations": [
                    f"Some of these photos are no longer {source.code}'s (a later change moved them: "
                    "undo that first, or reload)."
                ]
            }
        )


def _identities_changed(actor: AnyUser, change: IdentityChange, species_id: int) -> None:
    from identification.tasks import refit_calibration

    audit.record(
        actor=actor,
        action=f"individual.{change.kind}",
        obj=change.individual,
        project_id=change.individual.project_id,
        changes={
            "other": change.other_id,
            "annotations": change.annotation_ids,
            "undoes": change.undoes_id,
        },
    )
    # Curated pairs changed: the species' fusion calibration may need refitting.
    transaction.on_commit(lambda: refit_calibration.delay(species_id))


def _retire(individual: Individual, *, into: Individual) -> None:
    Individual.objects.filter(pk=individual.pk).update(
        status=IndividualStatus.MERGED, merged_into=into, updated_at=timezone.now()
    )


def individual_merge(*, actor: AnyUser, source: Individual, target: Individual) -> IdentityChange:
    """Move every annotation of `source` to `target` and mark `source` merged into it."""
    require(actor, source, Action.CURATE)
    require(actor, target, Action.CURATE)
    require_link(
        actor,
        Action.CURATE,
        End(source.project_id, source.species_id),
        End(target.project_id, target.species_id),
    )
    with transaction.atomic():
        source, target = _locked(source, target)
        preview = selectors.merge_preview(source, target)  # checked again under the locks
        ids = list(
            Annotation.objects.select_for_update()
            .filter(individual=source)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        _move(ids, source=source, target=target)
        previous_status = source.status
        _retire(source, into=target)
        change = IdentityChange.objects.create(
            kind=IdentityChangeKind.MERGE,
            individual=source,
            other=target,
            annotation_ids=ids,
            previous_status=previous_status,
            preview=preview.as_json(),
            actor=actor if actor.is_authenticated else None,
        )
        _identities_changed(actor, change, source.species_id)
    return change


def individual_split(
    *, actor: AnyUser, individual: Individual, annotation_ids: list[int], new_code: str = ""
) -> IdentityChange:
    """Move the chosen annotations of `individual` to a new individual of the same project and species."""
    require(actor, individual, Action.CURATE)
    with transaction.atomic():
        (individual,) = _locked(individual)
        ids = sorted(set(annotation_ids))
        _lock_annotations(ids)
        preview = selectors.split_preview(individual, ids)
        new = catalog_services.individual_create(
            actor=actor,
            project=individual.project,
            species=individual.species,
            code=new_code.strip() or _next_code(individual.project, individual.species),
            notes=f"Split from {individual.code}.",
        )
        _move(ids, source=individual, target=new)
        change = IdentityChange.objects.create(
            kind=IdentityChangeKind.SPLIT,
            individual=individual,
            other=new,
            annotation_ids=ids,
            preview=preview.as_json(),
            actor=actor if actor.is_authenticated else None,
        )
        _identities_changed(actor, change, individual.species_id)
    return change


def identity_change_undo(*, actor: AnyUser, change: IdentityChange) -> IdentityChange:
    """Revert a merge or split exactly: the same annotations go back, the merged individual returns with
    its former status; a split-off individual is retired (merged back) so its code and history remain.
    Refused when later changes moved any of those annotations again (undo those first)."""
    require(actor, change.individual, Action.CURATE)
    require(actor, change.other, Action.CURATE)
    if change.kind == IdentityChangeKind.UNDO:
        raise ValidationError({"change": ["An undo is not undone; merge or split again instead."]})
    with transaction.atomic():
        original, other = _locked(change.individual, change.other)
        if IdentityChange.objects.filter(undoes=change).exists():
            raise ValidationError({"change": ["This change was already undone."]})
        ids = list(change.annotation_ids)
        _lock_annotations(ids)
        if change.kind == IdentityChangeKind.MERGE:
            if original.merged_into_id != other.pk:
                raise ValidationError({"change": [f"{original.code} is no longer merged into {other.code}."]})
            _move(ids, source=other, target=original)
            Individual.objects.filter(pk=original.pk).update(
                status=change.previous_status or IndividualStatus.ACTIVE,
                merged_into=None,
                updated_at=timezone.now(),
            )
        else:
            if Annotation.objects.filter(individual=other).exclude(pk__in=ids).exists():
                raise ValidationError(
                    {"change": [f"{other.code} has photos added since the split: move them first."]}
                )
            _move(ids, source=other, target=original)
            _retire(other, into=original)
        undo = IdentityChange.objects.create(
            kind=IdentityChangeKind.UNDO,
            individual=original,
            other=other,
            annotation_ids=ids,
            undoes=change,
            actor=actor if actor.is_authenticated else None,
        )
        _identities_changed(actor, undo, original.species_id)
    return undo
