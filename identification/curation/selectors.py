"""Reads of curators' work: the decision log of an annotation, what a merge or split would do, and the
merge and split history of an individual."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet

from catalog.models import Annotation, Individual, IndividualStatus, Sex
from identification.models import Decision, IdentityChange, IdentityChangeKind
from resight.permissions import Action, AnyUser, scope


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


@dataclass(frozen=True)
class Sibling:
    """Another photo of the same sighting and species: the same animal, most often."""

    annotation: Annotation

    @property
    def identified(self) -> bool:
        return self.annotation.individual_id is not None


def sighting_siblings(user: AnyUser, annotation: Annotation) -> list[Sibling]:
    """The other annotations of the annotation's sighting, of its species, that `user` may see."""
    others = (
        scope(Annotation.objects.all(), user, Action.VIEW)
        .filter(sighting_id=annotation.sighting_id, species_id=annotation.species_id)
        .exclude(pk=annotation.pk)
        .select_related("individual", "media_asset")
        .order_by("media_asset_id", "pk")
    )
    return [Sibling(a) for a in others]
