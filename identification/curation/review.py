"""The review queue: annotations with finished match jobs that nobody has identified yet, most confident
first, handed out so that curators working at once never receive the same one.

The next item is picked and claimed in one transaction that locks the annotation row with
`FOR UPDATE SKIP LOCKED`: a concurrent curator's pick skips it instead of waiting for it, and the claim
(`ReviewClaim`, with an expiry) keeps it theirs until they decide or the claim lapses.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import Annotation
from identification.models import DecisionKind, JobState, MatchJob, ReviewClaim
from resight.permissions import Action, AnyUser, scope

CLAIM_MINUTES = 15
SETTLED = (DecisionKind.CONFIRM, DecisionKind.NEW_INDIVIDUAL, DecisionKind.UNIDENTIFIABLE)


def pending(user: AnyUser, project_id: int | None = None) -> QuerySet[Annotation]:
    """Annotations awaiting a curator's decision that `user` may curate."""
    queryset = (
        scope(Annotation.objects.all(), user, Action.CURATE)
        .filter(individual__isnull=True, match_jobs__state=JobState.DONE)
        .exclude(decisions__kind__in=SETTLED)
    )
    if user.is_authenticated:
        queryset = queryset.exclude(decisions__kind=DecisionKind.SKIP, decisions__decided_by=user)
    if project_id is not None:
        queryset = queryset.filter(media_asset__project_id=project_id)
    return queryset


def claim_next(user: AnyUser, project_id: int | None = None) -> MatchJob | None:
    """Claim the most confident pending annotation nobody else holds; return its latest finished job."""
    if not isinstance(user, User):
        return None  # only signed-in curators hold claims
    now = timezone.now()
    taken_by_others = Q(review_claim__expires_at__gt=now) & ~Q(review_claim__claimed_by=user)
    passed_over: list[int] = []
    with transaction.atomic():
        while True:
            annotation = (
                pending(user, project_id)
                .exclude(taken_by_others)
                .exclude(pk__in=passed_over)
                .order_by("-match_jobs__top_probability", "pk")
                .select_for_update(skip_locked=True, of=("self",))
                .first()
            )
            if annotation is None:
                return None
            # The pick above filtered claims with its own snapshot: a curator who claimed this annotation and
            # committed just before we locked it is only visible to a new statement. Check again.
            claim = ReviewClaim.objects.filter(annotation=annotation).first()
            if claim is None or claim.expires_at <= now or claim.claimed_by_id == user.pk:
                break
            passed_over.append(annotation.pk)
        ReviewClaim.objects.update_or_create(
            annotation=annotation,
            defaults={"claimed_by": user, "expires_at": now + dt.timedelta(minutes=CLAIM_MINUTES)},
        )
    return (
        MatchJob.objects.filter(annotation=annotation, state=JobState.DONE).order_by("-finished_at").first()
    )


def release(annotation: Annotation) -> None:
    ReviewClaim.objects.filter(annotation=annotation).delete()
