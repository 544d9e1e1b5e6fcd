"""Reads of identification results, scoped by the permission policy."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from catalog.models import Individual
from identification.models import MatchCandidate, MatchJob
from resight.permissions import Action, AnyUser, scope


def jobs_for(user: AnyUser) -> QuerySet[MatchJob]:
    return scope(MatchJob.objects.all(), user, Action.VIEW).select_related(
        "space", "annotation__media_asset", "annotation__species", "annotation__sighting"
    )


class _ViewableIndividuals:
    """Lazy membership test: is a candidate's individual one the user may open?"""

    def __init__(self, user: AnyUser) -> None:
        self.user = user
        self._ids: set[int] | None = None

    def __contains__(self, individual_id: object) -> bool:
        if self._ids is None:
            self._ids = set(
                scope(Individual.objects.all(), self.user, Action.VIEW).values_list("pk", flat=True)
            )
        return individual_id in self._ids


def viewable_individuals_of_jobs(user: AnyUser) -> _ViewableIndividuals:
    return _ViewableIndividuals(user)


@dataclass(frozen=True)
class CandidateRow:
    candidate: MatchCandidate
    viewable: bool


def candidates_of(user: AnyUser, job: MatchJob) -> list[CandidateRow]:
    candidates = list(job.candidates.select_related("individual__project", "annotation__media_asset"))
    viewable = viewable_individuals_of_jobs(user)
    return [CandidateRow(c, c.individual_id in viewable) for c in candidates]
