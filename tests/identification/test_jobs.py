"""Match jobs through the worker's code path: states, candidates, idempotence, failures, recovery."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from identification.matching import crops, jobs, pipeline
from identification.matching import services as matching_services
from identification.models import JobState, MatchCandidate, MatchJob
from tests.conftest import Catalogue, add_photo


def start(catalogue: Catalogue, individual_index: int, seed: int) -> MatchJob:
    query = add_photo(catalogue.world, individual_index, seed=seed, day=100)
    return matching_services.match_job_start(
        actor=catalogue.world.users["curator"], annotation=query, filters={"same_viewpoint": False}
    )


@pytest.mark.parametrize("individual_index", [0, 2])
def test_a_new_photo_of_a_known_individual_ranks_it_first(
    catalogue: Catalogue, individual_index: int
) -> None:
    job = start(catalogue, individual_index, seed=9000 + individual_index)
    assert job.state == JobState.QUEUED
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE, job.error
    candidates = list(job.candidates.order_by("rank"))
    assert candidates[0].individual == catalogue.individuals[individual_index]
    assert [c.rank for c in candidates] == list(range(1, len(candidates) + 1))
    assert len({c.individual_id for c in candidates}) == len(candidates)  # one row per individual
    first = candidates[0]
    assert first.band in {"excellent", "good", "fair", "uncertain"}
    assert (first.model_key, first.matcher_key) == (job.space.key, "sift")
    assert first.local_score is not None and first.match_count is not None
    assert job.finished_at is not None and job.attempts == 1


def test_running_a_finished_job_again_is_a_no_op(catalogue: Catalogue) -> None:
    job = start(catalogue, 1, seed=9100)
    pipeline.run(job.pk)
    before = list(MatchCandidate.objects.filter(job=job).values_list("pk", flat=True))
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.attempts == 1
    assert list(MatchCandidate.objects.filter(job=job).values_list("pk", flat=True)) == before


def test_only_one_worker_claims_a_job(catalogue: Catalogue) -> None:
    job = start(catalogue, 1, seed=9200)
    assert jobs.claim(job.pk) is True
    assert jobs.claim(job.pk) is False  # held, lease not expired
    MatchJob.objects.filter(pk=job.pk).update(claimed_by="elsewhere:1")  # another worker took it over
    with pytest.raises(jobs.ClaimLost):
        jobs.advance(job.pk, JobState.SEARCHING)


def test_a_job_left_by_a_killed_worker_is_recovered_without_duplicates(catalogue: Catalogue) -> None:
    job = start(catalogue, 3, seed=9300)
    pipeline.run(job.pk)
    first_run = list(job.candidates.values_list("individual_id", "rank"))
    # As if a worker (a process that no longer exists) had claimed it again and died while re-ranking.
    MatchJob.objects.filter(pk=job.pk).update(
        state=JobState.RERANKING,
        claimed_by=f"{jobs.worker_id().split(':')[0]}:999999999",
        lease_expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    assert jobs.claim(job.pk) is False  # its lease still runs...
    enqueued: list[int] = []
    assert jobs.recover_orphaned(enqueued.append) == [job.pk]  # ...but its process is gone
    for job_id in enqueued:
        pipeline.run(job_id)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.attempts == 2
    assert list(job.candidates.values_list("individual_id", "rank")) == first_run


def test_a_job_whose_lease_ran_out_on_another_host_is_recovered(catalogue: Catalogue) -> None:
    job = start(catalogue, 1, seed=9400)
    MatchJob.objects.filter(pk=job.pk).update(
        state=JobState.SEARCHING,
        claimed_by="another-host:42",  # its process cannot be looked up from here
        attempts=1,
        lease_expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    enqueued: list[int] = []
    assert jobs.recover_orphaned(enqueued.append) == []  # a live lease elsewhere is left alone
    MatchJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert jobs.recover_orphaned(enqueued.append) == [job.pk]
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.attempts == 2


def test_a_corrupt_photo_fails_the_job_with_a_reason_and_nothing_else(catalogue: Catalogue) -> None:
    job = start(catalogue, 0, seed=9400)
    asset = job.annotation.media_asset
    with asset.file.open("rb") as f:
        data = f.read()
    with open(asset.file.path, "wb") as f:  # the stored original got damaged after upload
        f.write(data[: len(data) // 3])
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert "could not be read" in job.error and asset.original_filename in job.error
    assert not job.candidates.exists()
    healthy = start(catalogue, 1, seed=9401)  # the next job is not affected
    pipeline.run(healthy.pk)
    healthy.refresh_from_db()
    assert healthy.state == JobState.DONE


def test_match_rights_decide_which_projects_are_searched(catalogue: Catalogue) -> None:
    world = catalogue.world
    query = add_photo(world, 0, seed=9500, day=100)
    job = matching_services.match_job_start(actor=world.users["contributor"], annotation=query)
    assert job.project_ids == [world.project.pk]
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        matching_services.match_job_start(actor=world.users["viewer"], annotation=query)


def test_the_query_is_masked_to_the_animal_and_a_new_box_drops_the_old_mask(catalogue: Catalogue) -> None:
    from PIL import Image

    from catalog import services as catalog_services

    job = start(catalogue, 0, seed=9600)
    pipeline.run(job.pk)
    annotation = job.annotation
    annotation.refresh_from_db()
    assert annotation.mask, "the mask refiner ran before embedding"
    with annotation.mask.open("rb") as f, Image.open(f) as mask:
        assert mask.size == (annotation.media_asset.width, annotation.media_asset.height)
        inside = int((np.asarray(mask) > 127).sum())
    assert 0 < inside < annotation.width * annotation.height  # tighter than the box
    catalog_services.annotation_update(
        actor=catalogue.world.users["curator"], annotation=annotation, changes={"box": (0, 0, 100, 100)}
    )
    annotation.refresh_from_db()
    assert not annotation.mask


def test_a_job_decodes_the_query_photo_once(catalogue: Catalogue, monkeypatch) -> None:

    decoded: list[int] = []
    real = crops.crop_of

    def counting(annotation):  # the real decode, counted
        decoded.append(annotation.pk)
        return real(annotation)

    monkeypatch.setattr(crops, "crop_of", counting)
    job = start(catalogue, 1, seed=9700)
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE
    assert decoded.count(job.annotation_id) == 1  # embedding and local features share one decode


def test_candidates_keep_their_keypoint_matches_in_photo_pixels_for_the_review_page(
    catalogue: Catalogue,
) -> None:
    from django.test import Client

    job = start(catalogue, 1, seed=9100)
    pipeline.run(job.pk)
    first = job.candidates.select_related("annotation").order_by("rank").first()
    assert first is not None and first.local_score is not None
    assert 0 < len(first.keypoint_pairs) <= min(int(first.local_score), pipeline.MAX_DRAWN_PAIRS)
    qx, qy, qw, qh = job.annotation.box
    cx, cy, cw, ch = first.annotation.box
    for x1, y1, x2, y2 in first.keypoint_pairs:  # each end lies on its own animal's box
        assert qx - 1 <= x1 <= qx + qw + 1 and qy - 1 <= y1 <= qy + qh + 1
        assert cx - 1 <= x2 <= cx + cw + 1 and cy - 1 <= y2 <= cy + ch + 1
    client = Client()
    client.force_login(catalogue.world.users["curator"])
    page = client.get(f"/match-jobs/{job.pk}/").content.decode()
    assert 'id="compare-data"' in page and '"pairs": [[' in page
    assert f"/individuals/{first.individual_id}/gallery/" in page


def test_redrawing_the_box_of_an_unidentified_animal_drops_stale_vectors_and_matches_again(
    catalogue: Catalogue, django_capture_on_commit_callbacks
) -> None:
    from catalog import services as catalog_services
    from identification.models import AnnotationEmbedding

    job = start(catalogue, 3, seed=9200)
    pipeline.run(job.pk)
    query = job.annotation
    assert AnnotationEmbedding.objects.filter(annotation=query).exists()
    x, y, w, h = query.box
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.annotation_update(
            actor=catalogue.world.users["curator"],
            annotation=query,
            changes={"box": (x + 4, y + 4, w - 8, h - 8)},
        )
    assert not AnnotationEmbedding.objects.filter(annotation=query).exists()
    latest = MatchJob.objects.filter(annotation=query).order_by("-created_at").first()
    assert latest is not None and latest.pk != job.pk and latest.state == JobState.QUEUED
