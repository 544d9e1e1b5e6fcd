"""Reads of match jobs and their candidates, scoped by the permission policy."""

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
