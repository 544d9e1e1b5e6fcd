"""Curators' decisions on a match job's annotation: confirm a candidate, declare a new individual, reject a
candidate, skip, mark unidentifiable; and undo. Each is logged with the candidates, scores and versions
that were on screen; two curators deciding at once never both apply theirs."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from catalog import services as catalog_services
from catalog.models import Annotation, Individual
from identification.curation import review
from identification.curation.identities import lock_individuals
from identification.models import Decision, DecisionKind, JobState, MatchJob
from resight.permissions import Action, AnyUser, require, user_or_none


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
            lock_individuals(candidate.individual)
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
                code=new_code.strip()
                or catalog_services.next_individual_code(locked.media_asset.project, locked.species),
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
            decided_by=user_or_none(actor),
        )


def _code(individual_id: int) -> str:
    return Individual.objects.filter(pk=individual_id).values_list("code", flat=True).first() or "another"


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
            decided_by=user_or_none(actor),
        )
