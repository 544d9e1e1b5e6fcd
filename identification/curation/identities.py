"""Merging and splitting individuals, and undoing either exactly. Both lock the individuals' rows (in
primary-key order, so two merges never deadlock) and then the annotations they move, so concurrent merges,
splits and decisions serialise: each sees the others' committed result, and no annotation is lost or moved
twice. Annotation assignments lock the individual too (catalog.services), so a photo cannot land on an
individual being merged away. Both ends of a merge must be curated by the actor, within one organisation."""

from __future__ import annotations

from celery import current_app as celery_app
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog import services as catalog_services
from catalog.models import Annotation, Individual
from identification.curation import selectors
from identification.models import IdentityChange, IdentityChangeKind
from resight import audit
from resight.permissions import Action, AnyUser, End, require, require_link, user_or_none


def lock_individuals(*individuals: Individual) -> list[Individual]:
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


def _logged(
    actor: AnyUser, kind: str, individual: Individual, other: Individual, ids: list[int], **extra: object
) -> IdentityChange:
    """Append the change to the identity log and the audit log; the species' fusion calibration is refitted
    afterwards (curated pairs changed)."""
    change = IdentityChange.objects.create(
        kind=kind, individual=individual, other=other, annotation_ids=ids, actor=user_or_none(actor), **extra
    )
    audit.record(
        actor=actor,
        action=f"individual.{change.kind}",
        obj=individual,
        project_id=individual.project_id,
        changes={"other": other.pk, "annotations": ids, "undoes": change.undoes_id},
    )
    species_id, changed = individual.species_id, [individual.pk, other.pk]
    transaction.on_commit(
        lambda: celery_app.send_task("identification.tasks.refit_calibration", args=[species_id])
    )
    # Undecided jobs either individual could enter (or leave) are re-ranked (matching.freshness).
    transaction.on_commit(
        lambda: celery_app.send_task("identification.tasks.refresh_candidates", args=[changed])
    )
    return change


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
        source, target = lock_individuals(source, target)
        preview = selectors.merge_preview(source, target)  # checked again under the locks
        ids = list(
            Annotation.objects.select_for_update()
            .filter(individual=source)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        catalog_services.move_annotations(ids, source=source, target=target)
        previous_status = source.status
        catalog_services.individual_set_merged(source, into=target)
        change = _logged(
            actor,
            IdentityChangeKind.MERGE,
            source,
            target,
            ids,
            previous_status=previous_status,
            preview=preview.as_json(),
        )
    return change


def individual_split(
    *, actor: AnyUser, individual: Individual, annotation_ids: list[int], new_code: str = ""
) -> IdentityChange:
    """Move the chosen annotations of `individual` to a new individual of the same project and species."""
    require(actor, individual, Action.CURATE)
    with transaction.atomic():
        (individual,) = lock_individuals(individual)
        ids = sorted(set(annotation_ids))
        _lock_annotations(ids)
        preview = selectors.split_preview(individual, ids)
        new = catalog_services.individual_create(
            actor=actor,
            project=individual.project,
            species=individual.species,
            code=new_code.strip()
            or catalog_services.next_individual_code(individual.project, individual.species),
            notes=f"Split from {individual.code}.",
        )
        catalog_services.move_annotations(ids, source=individual, target=new)
        change = _logged(actor, IdentityChangeKind.SPLIT, individual, new, ids, preview=preview.as_json())
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
        original, other = lock_individuals(change.individual, change.other)
        if IdentityChange.objects.filter(undoes=change).exists():
            raise ValidationError({"change": ["This change was already undone."]})
        ids = list(change.annotation_ids)
        _lock_annotations(ids)
        if change.kind == IdentityChangeKind.MERGE:
            if original.merged_into_id != other.pk:
                raise ValidationError({"change": [f"{original.code} is no longer merged into {other.code}."]})
            catalog_services.move_annotations(ids, source=other, target=original)
            catalog_services.individual_set_merged(original, into=None, status=change.previous_status)
        else:
            if Annotation.objects.filter(individual=other).exclude(pk__in=ids).exists():
                raise ValidationError(
                    {"change": [f"{other.code} has photos added since the split: move them first."]}
                )
            catalog_services.move_annotations(ids, source=other, target=original)
            catalog_services.individual_set_merged(other, into=original)
        undo = _logged(actor, IdentityChangeKind.UNDO, original, other, ids, undoes=change)
    return undo
