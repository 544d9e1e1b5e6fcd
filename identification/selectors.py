"""Reads of identification results, scoped by the permission policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet

from catalog.models import Annotation, Individual, IndividualStatus, Sex
from identification import search
from identification.models import (
    AnnotationEmbedding,
    Decision,
    EmbeddingSpace,
    IdentityChange,
    IdentityChangeKind,
    MatchCandidate,
    MatchJob,
)
from resight.permissions import Action, AnyUser, scope


def jobs_for(user: AnyUser) -> QuerySet[MatchJob]:
    return scope(MatchJob.objects.all(), user, Action.VIEW).select_related(
        "space", "annotation__media_asset", "annotation__species", "annotation__sighting"
    )


def viewable_individual_ids(user: AnyUser, job: MatchJob) -> set[int]:
    """Which of the job's candidate individuals the user may open (the others come from match-against-only
    agreements: the match is reported, the individual stays closed)."""
    individuals = Individual.objects.filter(pk__in=[c.individual_id for c in job.candidates.all()])
    return set(scope(individuals, user, Action.VIEW).values_list("pk", flat=True))


@dataclass(frozen=True)
class CandidateRow:
    candidate: MatchCandidate
    viewable: bool
    linkable: bool  # the user may confirm it: the photo may be given this individual (require_link)


def candidates_of(user: AnyUser, job: MatchJob) -> list[CandidateRow]:
    candidates = list(job.candidates.select_related("individual__project", "annotation__media_asset"))
    viewable = viewable_individual_ids(user, job)
    owner = job.annotation.media_asset.project.organization_id
    curated = set(
        scope(Individual.objects.filter(pk__in=viewable), user, Action.CURATE).values_list("pk", flat=True)
    )
    return [
        CandidateRow(
            c,
            c.individual_id in viewable,
            c.individual_id in curated and c.individual.project.organization_id == owner,
        )
        for c in candidates
    ]


def decisions_on(annotation: Annotation) -> QuerySet[Decision]:
    """The annotation's decision log, newest first (the caller already may see the annotation)."""
    return Decision.objects.filter(annotation=annotation).select_related("decided_by", "individual")


@dataclass(frozen=True)
class IdentityPreview:
    """What a merge or split would do, shown to the curator before they confirm it (and kept with it)."""

    moving_annotations: int
    moving_sightings: int
    remaining_annotations: int  # merge: the target's after; split: the original's after
    warnings: list[str]

    def as_json(self) -> dict[str, object]:
        return {
            "moving_annotations": self.moving_annotations,
            "moving_sightings": self.moving_sightings,
            "remaining_annotations": self.remaining_annotations,
            "warnings": self.warnings,
        }


def merge_preview(source: Individual, target: Individual) -> IdentityPreview:
    """Consequences of merging `source` into `target`; ValidationError when it cannot be done."""
    if source.pk == target.pk:
        raise ValidationError({"target": ["An individual cannot be merged into itself."]})
    if source.species_id != target.species_id:
        raise ValidationError({"target": ["Only individuals of one species can be merged."]})
    for individual in (source, target):
        if individual.status == IndividualStatus.MERGED:
            raise ValidationError(
                {"target": [f"{individual.code} is already merged into another individual."]}
            )
    moving = Annotation.objects.filter(individual=source)
    warnings = []
    shared_photos = (
        moving.filter(media_asset__annotations__individual=target).values("media_asset").distinct().count()
    )
    if shared_photos:
        warnings.append(
            f"{source.code} and {target.code} appear side by side in {shared_photos} photo"
            f"{'s' if shared_photos > 1 else ''}: two animals, not one?"
        )
    if Sex.UNKNOWN not in (source.sex, target.sex) and source.sex != target.sex:
        warnings.append(f"{source.code} is recorded as {source.sex}, {target.code} as {target.sex}.")
    if source.project_id != target.project_id:
        warnings.append(
            f"{source.code}'s photos join an individual of another project ({target.project.name})."
        )
    count = moving.count()
    return IdentityPreview(
        moving_annotations=count,
        moving_sightings=moving.values("sighting").distinct().count(),
        remaining_annotations=Annotation.objects.filter(individual=target).count() + count,
        warnings=warnings,
    )


def split_preview(individual: Individual, annotation_ids: list[int]) -> IdentityPreview:
    """Consequences of moving `annotation_ids` of `individual` to a new individual."""
    if individual.status == IndividualStatus.MERGED:
        raise ValidationError({"annotations": [f"{individual.code} is merged into another individual."]})
    own = Annotation.objects.filter(individual=individual)
    moving = own.filter(pk__in=annotation_ids)
    if not annotation_ids or moving.count() != len(set(annotation_ids)):
        raise ValidationError({"annotations": [f"Choose photos that are {individual.code}'s."]})
    remaining = own.count() - moving.count()
    if remaining == 0:
        raise ValidationError(
            {"annotations": ["Leave at least one photo: splitting off every photo is a rename."]}
        )
    warnings = []
    moving_sightings = set(moving.values_list("sighting", flat=True))
    staying_sightings = set(own.exclude(pk__in=annotation_ids).values_list("sighting", flat=True))
    if shared := moving_sightings & staying_sightings:
        warnings.append(f"{len(shared)} sighting{'s' if len(shared) > 1 else ''} will show both individuals.")
    return IdentityPreview(
        moving_annotations=moving.count(),
        moving_sightings=len(moving_sightings),
        remaining_annotations=remaining,
        warnings=warnings,
    )


def identity_changes_of(individual: Individual) -> QuerySet[IdentityChange]:
    """Merges and splits involving `individual`, newest first, with whether each was undone."""
    undone = IdentityChange.objects.filter(undoes=OuterRef("pk"))
    return (
        IdentityChange.objects.filter(Q(individual=individual) | Q(other=individual))
        .exclude(kind=IdentityChangeKind.UNDO)
        .select_related("individual", "other", "actor")
        .annotate(undone=Exists(undone))
    )


def space_vectors(
    user: AnyUser, space: EmbeddingSpace, species_id: int, limit: int
) -> tuple[np.ndarray, list[str]]:
    """Vectors of the identified annotations of a species in a space that `user` may see, with their
    individuals' codes (for the registry's embedding map)."""
    visible = scope(Annotation.objects.all(), user, Action.VIEW).filter(individual__isnull=False)
    rows = list(
        AnnotationEmbedding.objects.filter(space=space, species_id=species_id, annotation__in=visible)
        .order_by("annotation_id")
        .values_list("vector", "annotation__individual__code")[:limit]
    )
    vectors = np.array([search.as_array(v) for v, _ in rows]).reshape(len(rows), space.dim)
    return vectors, [code for _, code in rows]
