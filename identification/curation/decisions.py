"""Curators' decisions on a match job's annotation: confirm a candidate, declare a new individual, reject a
candidate, skip, mark unidentifiable; and undo. Each is logged with the candidates, scores and versions
that were on screen; two curators deciding at once never both apply theirs."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog import services as catalog_services
from catalog.models import Annotation, Individual
from identification.curation import review
from identification.curation.identities import lock_individuals
from identification.models import Decision, DecisionKind, JobState, MatchCandidate, MatchJob
from resight import webhooks
from resight.models import WebhookEvent
from resight.permissions import Action, AnyUser, require, user_or_none


def decide(
    *,
    actor: AnyUser,
    job: MatchJob,
    kind: str,
    candidate_rank: int | None = None,
    candidate_individual: int | None = None,
    same_as: int | None = None,
    with_photos: Sequence[int] = (),
    new_code: str = "",
    note: str = "",
) -> Decision:
    """Record a curator's decision on a finished job's annotation and apply it (assign or create the
    individual). The decision keeps the candidates, scores and versions that were on screen.

    A confirmation names a candidate by its rank (and, from a page, the individual shown at that rank: a
    list ranked again since refuses the decision rather than confirm another animal), or another photo of
    the same sighting already identified (`same_as`). A confirmation or a new individual may take other,
    unidentified photos of the same sighting and species along (`with_photos`): one animal, several
    photos, each logged with its own decision."""
    annotation = job.annotation
    require(actor, annotation, Action.CURATE)
    choices = [k for k in DecisionKind.values if k != DecisionKind.UNDO]  # undo has its own service
    if kind not in choices:
        raise ValidationError({"kind": [f"One of: {', '.join(choices)}."]})
    siblings = _siblings(actor, annotation, with_photos)
    target = None
    if kind == DecisionKind.CONFIRM and same_as is not None:
        target = _identity_of_sibling(actor, annotation, same_as)
        candidate = None
    else:
        candidate = _candidate(job, kind, candidate_rank, candidate_individual)
        target = candidate.individual if candidate is not None and kind == DecisionKind.CONFIRM else None
    with transaction.atomic():
        if target is not None:
            # Individual before annotation, the order merges lock in, so a decision and a merge never
            # deadlock; a merged candidate is then refused when the annotation is assigned.
            lock_individuals(target)
        # One decision at a time per annotation: two curators never both apply theirs unseen.
        locked = _locked_annotation(annotation.pk)
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
        if kind == DecisionKind.NEW_INDIVIDUAL:
            target = catalog_services.individual_create(
                actor=actor,
                project=locked.media_asset.project,
                species=locked.species,
                code=new_code.strip()
                or catalog_services.next_individual_code(locked.media_asset.project, locked.species),
            )
        if target is not None:
            catalog_services.annotation_update(actor=actor, annotation=locked, changes={"individual": target})
        shown = _shown(job)
        if kind != DecisionKind.NOT_THIS_ONE:  # the curator is done with this annotation for now
            review.release(locked)
        decision = Decision.objects.create(
            annotation=locked,
            job=job,
            kind=kind,
            candidate_rank=candidate.rank if candidate is not None else None,
            individual_id=locked.individual_id,
            previous_individual_id=previous,
            shown=shown,
            model_key=job.space.key,
            matcher_key=job.matcher,
            note=note or (f"same animal as photo {_photo_of(same_as)}" if same_as is not None else ""),
            decided_by=user_or_none(actor),
        )
        if target is not None:
            for sibling in siblings:
                _take_along(actor, sibling, target, kind, photo=locked.media_asset_id)
            webhooks.emit(
                WebhookEvent.IDENTITY_CONFIRMED,
                locked.media_asset.project,
                {
                    "identity": {
                        "decision": kind,
                        "individual": {"id": target.pk, "code": target.code},
                        "annotations": [locked.pk, *(s.pk for s in siblings)],
                        "decided_by": decision.decided_by.get_username() if decision.decided_by else None,
                    }
                },
            )
    return decision


def _candidate(
    job: MatchJob, kind: str, rank: int | None, individual_id: int | None
) -> MatchCandidate | None:
    if kind not in (DecisionKind.CONFIRM, DecisionKind.NOT_THIS_ONE):
        return None
    if job.state != JobState.DONE:
        raise ValidationError({"job": ["The job has no candidates yet."]})
    candidate = job.candidates.select_related("individual").filter(rank=rank or 0).first()
    if candidate is None:
        raise ValidationError({"candidate_rank": ["Choose one of the job's candidates."]})
    if individual_id is not None and candidate.individual_id != individual_id:
        raise ValidationError(
            {
                "candidate_rank": [
                    "The list was ranked again since you saw it: look at it again before deciding."
                ]
            }
        )
    return candidate


def _siblings(actor: AnyUser, annotation: Annotation, ids: Sequence[int]) -> list[Annotation]:
    """Other photos of the annotation's sighting, of its species, that the actor may curate."""
    if not ids:
        return []
    found = list(
        Annotation.objects.filter(
            pk__in=set(ids), sighting_id=annotation.sighting_id, species_id=annotation.species_id
        ).exclude(pk=annotation.pk)
    )
    if len(found) != len(set(ids) - {annotation.pk}):
        raise ValidationError({"with_photos": ["Only other photos of this sighting, of the same species."]})
    for sibling in found:
        require(actor, sibling, Action.CURATE)
    return found


def _identity_of_sibling(actor: AnyUser, annotation: Annotation, sibling_id: int) -> Individual:
    sibling = (
        Annotation.objects.select_related("individual")
        .filter(pk=sibling_id, sighting_id=annotation.sighting_id, species_id=annotation.species_id)
        .exclude(pk=annotation.pk)
        .first()
    )
    if sibling is None or sibling.individual is None:
        raise ValidationError({"same_as": ["Choose an identified photo of the same sighting and species."]})
    require(actor, sibling, Action.CURATE)
    return sibling.individual


def _take_along(actor: AnyUser, sibling: Annotation, target: Individual, kind: str, *, photo: int) -> None:
    """Give an unidentified sibling photo the decided identity, with its own logged decision."""
    locked = _locked_annotation(sibling.pk)
    if locked.individual_id is not None:
        return  # identified meanwhile: left as it is
    job = MatchJob.objects.filter(annotation=locked).order_by("-created_at").first()
    catalog_services.annotation_update(actor=actor, annotation=locked, changes={"individual": target})
    review.release(locked)
    Decision.objects.create(
        annotation=locked,
        job=job,
        kind=kind,
        individual_id=target.pk,
        previous_individual_id=None,
        shown=_shown(job) if job is not None else [],
        model_key=job.space.key if job is not None else "",
        matcher_key=job.matcher if job is not None else "",
        note=f"with photo {photo} (same sighting)",
        decided_by=user_or_none(actor),
    )


def _locked_annotation(pk: int) -> Annotation:
    return (
        Annotation.objects.select_for_update(of=("self",)).select_related("media_asset", "species").get(pk=pk)
    )


def _shown(job: MatchJob) -> list[dict[str, object]]:
    return [
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


def _photo_of(annotation_id: int) -> int | None:
    return Annotation.objects.filter(pk=annotation_id).values_list("media_asset_id", flat=True).first()


def _code(individual_id: int) -> str:
    return Individual.objects.filter(pk=individual_id).values_list("code", flat=True).first() or "another"


def undo(*, actor: AnyUser, annotation: Annotation) -> Decision:
    """Revert the latest decision on `annotation`: its identity goes back to what it was before. Recorded as
    a decision of its own; the log itself never changes."""
    require(actor, annotation, Action.CURATE)
    with transaction.atomic():
        locked = _locked_annotation(annotation.pk)
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
            decided_by=user_or_none(actor),
        )
