"""A real Celery worker (a separate process, filesystem broker) runs match jobs; killed mid-job, the job
completes after the worker restarts, with no duplicate candidates."""

from __future__ import annotations

import pytest
from django.conf import settings

from identification.models import ACTIVE_STATES, JobState, MatchJob
from tests.conftest import Catalogue, add_photo
from tests.worker import REPO, Worker, wait_for


def job_of(annotation_id: int) -> MatchJob | None:
    return MatchJob.objects.filter(annotation_id=annotation_id).first()


@pytest.mark.usefixtures("transactional_db")
def test_worker_runs_the_job_started_for_a_new_photo(catalogue: Catalogue, worker: Worker) -> None:
    worker.start()
    query = add_photo(catalogue.world, 1, seed=7777, day=200)  # no individual: a job starts by itself
    job = wait_for(lambda: (j := job_of(query.pk)) is not None and j.is_final and j)
    assert job.state == JobState.DONE, job.error
    assert job.candidates.order_by("rank").first().individual == catalogue.individuals[1]
    if settings.CELERY_BROKER_URL == "filesystem://":
        # The broker's exchange tables live in the broker folder, not in whatever folder a process runs in.
        assert (settings.BROKER_DIR / "control" / "interactive.exchange").is_file()
        assert not (REPO / "control").exists()


@pytest.mark.usefixtures("transactional_db")
def test_a_job_whose_worker_is_killed_completes_after_restart(catalogue: Catalogue, worker: Worker) -> None:
    query = add_photo(catalogue.world, 2, seed=8888, day=200)
    job = wait_for(lambda: job_of(query.pk))
    # Only the interactive queue: the catalogue gets embedded inside the job, which takes a while.
    worker.start()
    wait_for(lambda: MatchJob.objects.filter(pk=job.pk, state__in=ACTIVE_STATES).exists(), step=0.01)
    worker.kill()
    job.refresh_from_db()
    assert job.state in ACTIVE_STATES  # stranded mid-way
    worker.start()
    done = wait_for(lambda: (j := MatchJob.objects.get(pk=job.pk)).is_final and j)
    assert done.state == JobState.DONE, done.error
    assert done.attempts == 2
    ranks = list(done.candidates.values_list("rank", flat=True))
    assert ranks == list(range(1, len(ranks) + 1))
    assert done.candidates.values("individual").distinct().count() == len(ranks)
    assert {c.individual for c in done.candidates.all()} <= set(catalogue.individuals)
