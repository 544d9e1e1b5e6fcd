"""The match job state machine (identification.matching.pipeline runs a job through it).

    queued -> embedding -> searching -> re-ranking -> done
       \\__________\\____________\\____________\\-----> failed (with a reason)

A worker claims a job with one conditional UPDATE (a queued job, or an active one whose lease expired or
whose worker process is gone) and advances it only while it holds the claim, so two workers never run the
same job, a rerun of a finished job is a no-op, and a job whose worker was killed is taken over after the
restart (`recover_orphaned`). Candidates are replaced in one transaction with the final state: a job that
is run twice never has duplicate candidates.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable

import psutil
from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from identification.models import ACTIVE_STATES, JobState, MatchJob

logger = logging.getLogger(__name__)


class ClaimLost(RuntimeError):
    """Another worker took the job over (our lease expired): stop without touching it."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(claimed_by: str) -> bool:
    """Whether a `host:pid` claim was made by a process of this host that no longer exists."""
    host, _, pid = claimed_by.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


def _lease() -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=settings.RESIGHT_JOB_LEASE_SECONDS)


def claim(job_id: int) -> bool:
    now = timezone.now()
    claimable = Q(state=JobState.QUEUED) | Q(state__in=ACTIVE_STATES, lease_expires_at__lt=now)
    return bool(
        MatchJob.objects.filter(claimable, pk=job_id).update(
            state=JobState.EMBEDDING,
            claimed_by=worker_id(),
            lease_expires_at=_lease(),
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
            error="",
        )
    )


def advance(job_id: int, state: JobState, **fields: object) -> None:
    updated = MatchJob.objects.filter(pk=job_id, claimed_by=worker_id(), state__in=ACTIVE_STATES).update(
        state=state, lease_expires_at=_lease(), **fields
    )
    if not updated:
        raise ClaimLost(f"job {job_id} is no longer ours")


def fail(job_id: int, reason: str) -> None:
    MatchJob.objects.filter(pk=job_id, state__in=ACTIVE_STATES).update(
        state=JobState.FAILED, error=reason[:2000], finished_at=timezone.now(), lease_expires_at=None
    )


def recover_orphaned(
    enqueue: Callable[[int], None], *, queued_older_than: dt.timedelta | None = None
) -> list[int]:
    """Re-enqueue jobs a dead worker left behind: active jobs whose worker process on this host is gone (their
    lease is expired on the spot), active jobs whose lease ran out (a worker on another host died, or the
    database restarted under it) and, optionally, queued jobs whose message may have been lost. A job enqueued
    twice runs once (`claim`)."""
    host = socket.gethostname()
    now = timezone.now()
    recovered = []
    for job in MatchJob.objects.filter(state__in=ACTIVE_STATES, claimed_by__startswith=f"{host}:"):
        if holder_is_dead(job.claimed_by) and MatchJob.objects.filter(
            pk=job.pk, claimed_by=job.claimed_by, state__in=ACTIVE_STATES
        ).update(lease_expires_at=now - dt.timedelta(seconds=1)):
            recovered.append(job.pk)
    expired = MatchJob.objects.filter(state__in=ACTIVE_STATES, lease_expires_at__lt=now).exclude(
        pk__in=recovered
    )
    recovered += list(expired.values_list("pk", flat=True))
    if queued_older_than is not None:
        cutoff = now - queued_older_than
        recovered += list(
            MatchJob.objects.filter(state=JobState.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)
        )
    for job_id in recovered:
        enqueue(job_id)
    return recovered
