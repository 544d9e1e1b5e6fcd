"""Candidates that stay true to the catalogue. When an individual is created, confirmed, merged or split,
the undecided jobs it could change are re-ranked, and a page can tell when a list predates a change.

Which jobs: a finished job whose photo nobody has identified yet, of the same species, searching the
changed individual's project, and either listing one of the changed individuals (a merge or split moved
its photos) or with a query close enough to one of their photos to enter its shortlist: the photo's cosine
reaches the job's entry cosine (its shortlist's last, kept with the job; -1 while the shortlist is not
full). The changed individual's vectors are searched against the pending queries in one statement; only
those jobs are ranked again, from stored vectors and features (pipeline.rerank). The other pending jobs of
the species are still right (nothing new can enter their shortlist): they are marked ranked now.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from catalog.models import Individual
from identification.matching import pipeline
from identification.models import (
    AnnotationEmbedding,
    Decision,
    DecisionKind,
    IdentityChange,
    JobState,
    MatchJob,
)


def pending_jobs(species_ids: set[int]) -> list[int]:
    """Finished jobs of these species whose photo is not identified yet."""
    return list(
        MatchJob.objects.filter(
            state=JobState.DONE, annotation__individual__isnull=True, annotation__species_id__in=species_ids
        ).values_list("pk", flat=True)
    )


def affected_jobs(individual_ids: list[int]) -> tuple[list[int], list[int]]:
    """(the pending jobs the individuals could change, the other pending jobs of their species)."""
    species_ids = set(Individual.objects.filter(pk__in=individual_ids).values_list("species_id", flat=True))
    pending = pending_jobs(species_ids)
    if not pending:
        return [], []
    listing = set(
        MatchJob.objects.filter(pk__in=pending, candidates__individual_id__in=individual_ids).values_list(
            "pk", flat=True
        )
    )
    table = AnnotationEmbedding._meta.db_table
    # For each pending job: is a photo of the changed individuals, in the job's space and searched projects,
    # at least as close to the query as the job's shortlist entry? (halfvec of the space's dimension.)
    sql = f"""
        SELECT j.id FROM identification_matchjob j
        JOIN identification_embeddingspace sp ON sp.id = j.space_id
        JOIN {table} q ON q.annotation_id = j.annotation_id AND q.space_id = j.space_id
        WHERE j.id = ANY(%s) AND EXISTS (
            SELECT 1 FROM {table} e JOIN catalog_annotation a ON a.id = e.annotation_id
            WHERE a.individual_id = ANY(%s) AND e.space_id = j.space_id
              AND e.project_id IN (SELECT jsonb_array_elements_text(j.project_ids)::bigint)
              AND 1 - (e.vector <=> q.vector) >= COALESCE((j.search_report ->> 'entry_cosine')::float, -1)
        )
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [pending, individual_ids])
        close = {row[0] for row in cursor.fetchall()}
    affected = sorted(listing | close)
    return affected, sorted(set(pending) - set(affected))


def refresh_for(individual_ids: list[int]) -> list[int]:
    """Re-rank the pending jobs the changed individuals could change; mark the others of their species as
    ranked now (their list is what a re-rank would give). Returns the jobs re-ranked."""
    affected, unchanged = affected_jobs(individual_ids)
    MatchJob.objects.filter(pk__in=unchanged, state=JobState.DONE).update(ranked_at=timezone.now())
    return [job_id for job_id in affected if pipeline.rerank(job_id)]


def changed_since(job: MatchJob) -> dt.datetime | None:
    """When the catalogue of the job's species last changed after the job was ranked (a decision that
    named an individual, a merge, split or undo), or None: the list is current."""
    if job.ranked_at is None:
        return None
    species_id = job.annotation.species_id
    identified = Decision.objects.filter(
        annotation__species_id=species_id,
        kind__in=(DecisionKind.CONFIRM, DecisionKind.NEW_INDIVIDUAL, DecisionKind.UNDO),
        decided_at__gt=job.ranked_at,
    ).exclude(annotation_id=job.annotation_id)
    changes = IdentityChange.objects.filter(individual__species_id=species_id, created_at__gt=job.ranked_at)
    latest = [
        identified.aggregate(at=Max("decided_at"))["at"],
        changes.aggregate(at=Max("created_at"))["at"],
    ]
    return max((t for t in latest if t is not None), default=None)
