"""Reads of match jobs and their candidates, scoped by the permission policy."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from catalog.models import Individual
from identification.matching import calibration
from identification.models import MatchCandidate, MatchJob
from resight.models import Project
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
    # The first candidate only: the share of first candidates in its band that were the right animal on the
    # species' curated photos (held out at the last calibration refit); None until enough were measured.
    # Other ranks get none: the figure was measured on first candidates and would overstate a lower one.
    precision: float | None = None


def candidates_of(user: AnyUser, job: MatchJob) -> list[CandidateRow]:
    candidates = list(job.candidates.select_related("individual__project", "annotation__media_asset"))
    viewable = viewable_individual_ids(user, job)
    owner = job.annotation.media_asset.project.organization_id
    curated = set(
        scope(Individual.objects.filter(pk__in=viewable), user, Action.CURATE).values_list("pk", flat=True)
    )
    measured = calibration.band_precision(job.annotation.species_id, job.space, job.matcher) or {}
    return [
        CandidateRow(
            c,
            c.individual_id in viewable,
            c.individual_id in curated and c.individual.project.organization_id == owner,
            measured.get(c.band) if c.rank == 1 else None,
        )
        for c in candidates
    ]


RULE_LABELS = {
    "viewpoint": "viewpoint {value} (or unknown)",
    "body_part": "body part {value} (or unspecified)",
    "radius": "within {value:g} km of this sighting",
    "days": "within {value:g} days of this sighting (before or after)",
}


@dataclass(frozen=True)
class FilterRow:
    name: str  # the search report's name, which match_job_widen takes
    label: str
    left_out: int


@dataclass(frozen=True)
class Searched:
    """What a job compared with, for its page: the catalogue in scope, each filter with what it left out,
    and what was searched in the end."""

    photos: int
    individuals: int
    searched: int
    searched_individuals: int
    filters: list[FilterRow]
    projects: list[str]
    other_projects: int

    @property
    def filtered_out_everything(self) -> bool:
        return self.photos > 0 and self.searched == 0


def searched(user: AnyUser, job: MatchJob) -> Searched | None:
    report = job.search_report or {}
    if not report:
        return None  # jobs ranked before searches were reported
    rules = report.get("rules", {})
    left_out = report.get("left_out", {})
    filters = [
        FilterRow(name, RULE_LABELS[name].format(value=rules[name]), int(left_out.get(name, 0)))
        for name in RULE_LABELS
        if name in rules
    ]
    visible = list(
        scope(Project.objects.filter(pk__in=job.project_ids), user, Action.VIEW).values_list(
            "name", flat=True
        )
    )
    return Searched(
        photos=int(report.get("photos", 0)),
        individuals=int(report.get("individuals", 0)),
        searched=int(report.get("searched", 0)),
        searched_individuals=int(report.get("searched_individuals", 0)),
        filters=filters,
        projects=visible,
        other_projects=len(job.project_ids) - len(visible),
    )
