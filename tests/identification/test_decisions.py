"""Curators decide: confirm a candidate, declare a new individual, reject, skip; every decision is logged
with what was shown, and the log cannot be edited."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.test import Client
from rest_framework.test import APIClient

from identification.curation import decisions
from identification.matching import pipeline
from identification.matching import services as matching_services
from identification.models import Decision, MatchJob
from tests.conftest import Catalogue, add_photo


def done_job(catalogue: Catalogue, individual_index: int, seed: int) -> MatchJob:
    query = add_photo(catalogue.world, individual_index, seed=seed, day=280)
    job = matching_services.match_job_start(
        actor=catalogue.world.users["curator"], annotation=query, filters={"same_viewpoint": False}
    )
    pipeline.run(job.pk)
    job.refresh_from_db()
    return job


def test_confirming_the_top_candidate_identifies_the_annotation_and_logs_what_was_shown(
    catalogue: Catalogue,
) -> None:
    job = done_job(catalogue, 2, seed=4200)
    top = job.candidates.get(rank=1)
    decision = decisions.decide(
        actor=catalogue.world.users["curator"], job=job, kind="confirm", candidate_rank=1
    )
    job.annotation.refresh_from_db()
    assert job.annotation.individual == top.individual == catalogue.individuals[2]
    assert decision.previous_individual_id is None and decision.individual_id == top.individual_id
    assert decision.shown[0] == {
        "rank": 1,
        "individual": top.individual_id,
        "probability": top.probability,
        "band": top.band,
        "global_score": top.global_score,
        "local_score": top.local_score,
    }
    assert decision.model_key == job.space.key and decision.matcher_key == "sift"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(pk=decision.pk).update(kind="skip")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Decision.objects.filter(pk=decision.pk).delete()


def test_new_individual_gets_a_free_code_and_the_annotation(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 3, seed=4300)
    decision = decisions.decide(actor=catalogue.world.users["curator"], job=job, kind="new_individual")
    job.annotation.refresh_from_db()
    # The project's leopards are CAT-0 .. CAT-3 (and L1): the new one follows their pattern.
    assert job.annotation.individual is not None and job.annotation.individual.code == "CAT-4"
    assert decision.individual_id == job.annotation.individual_id
    named = done_job(catalogue, 1, seed=4301)
    decisions.decide(
        actor=catalogue.world.users["curator"], job=named, kind="new_individual", new_code="SPOTTY"
    )
    named.annotation.refresh_from_db()
    assert named.annotation.individual is not None and named.annotation.individual.code == "SPOTTY"


def test_rejections_and_skips_only_log(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 0, seed=4400)
    curator = catalogue.world.users["curator"]
    decisions.decide(actor=curator, job=job, kind="not_this_one", candidate_rank=1, note="different rosette")
    decisions.decide(actor=curator, job=job, kind="skip")
    job.annotation.refresh_from_db()
    assert job.annotation.individual is None
    assert list(Decision.objects.filter(annotation=job.annotation).values_list("kind", flat=True)) == [
        "skip",
        "not_this_one",
    ]
    with pytest.raises(ValidationError):
        decisions.decide(actor=curator, job=job, kind="confirm", candidate_rank=99)
    with pytest.raises(ValidationError):
        decisions.decide(actor=curator, job=job, kind="marry")
    with pytest.raises(ValidationError):
        decisions.decide(actor=curator, job=job, kind="undo")  # only through decisions.undo, which reverts


def test_only_curators_decide(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 0, seed=4500)
    for user in ("viewer", "contributor"):
        with pytest.raises(PermissionDenied):
            decisions.decide(actor=catalogue.world.users[user], job=job, kind="confirm", candidate_rank=1)
    api = APIClient()
    api.force_authenticate(catalogue.world.users["contributor"])
    assert api.post(f"/api/match-jobs/{job.pk}/decide/", {"kind": "skip"}, format="json").status_code == 403
    assert not Decision.objects.exists()


def test_deciding_over_rest_and_in_the_page(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 1, seed=4600)
    page = Client()
    page.force_login(catalogue.world.users["curator"])
    assert 'value="confirm"' in page.get(f"/match-jobs/{job.pk}/").content.decode()
    api = APIClient()
    api.force_authenticate(catalogue.world.users["curator"])
    response = api.post(
        f"/api/match-jobs/{job.pk}/decide/", {"kind": "confirm", "candidate_rank": 1}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "confirm" and response.json()["decided_by"] == "curator"
    assert api.get(f"/api/match-jobs/{job.pk}/").json()["decisions"][0]["id"] == response.json()["id"]
    html = page.get(f"/match-jobs/{job.pk}/").content.decode()
    # Decided: the page says who it is, and offers no second confirmation (only undo).
    assert "Identified as" in html and "Confirmed match" in html and 'value="confirm"' not in html
    assert 'value="undo"' in html
    follow = page.post(f"/match-jobs/{job.pk}/decide/", {"kind": "skip"}, follow=True)
    assert follow.status_code == 200 and "Skipped" in follow.content.decode()
    viewer = Client()
    viewer.force_login(catalogue.world.users["viewer"])
    assert 'value="confirm"' not in viewer.get(f"/match-jobs/{job.pk}/").content.decode()
    assert viewer.post(f"/match-jobs/{job.pk}/decide/", {"kind": "skip"}).status_code == 403


def test_undo_restores_the_previous_identity_and_is_logged(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 2, seed=4700)
    curator = catalogue.world.users["curator"]
    confirm = decisions.decide(actor=curator, job=job, kind="confirm", candidate_rank=1)
    undone = decisions.undo(actor=curator, annotation=job.annotation)
    job.annotation.refresh_from_db()
    assert job.annotation.individual is None
    assert (undone.kind, undone.undoes_id, undone.previous_individual_id) == (
        "undo",
        confirm.pk,
        confirm.individual_id,
    )
    with pytest.raises(ValidationError, match="no decision to undo"):
        decisions.undo(actor=curator, annotation=job.annotation)
    decisions.decide(actor=curator, job=job, kind="confirm", candidate_rank=1)  # confirm again
    job.annotation.refresh_from_db()
    assert job.annotation.individual == job.candidates.get(rank=1).individual
    api = APIClient()
    api.force_authenticate(curator)
    response = api.post(f"/api/match-jobs/{job.pk}/undo/")
    assert response.status_code == 201 and response.json()["kind"] == "undo"
    with pytest.raises(PermissionDenied):
        decisions.undo(actor=catalogue.world.users["contributor"], annotation=job.annotation)


def test_deleting_a_decided_annotation_keeps_the_log(catalogue: Catalogue) -> None:
    job = done_job(catalogue, 1, seed=4800)
    decision = decisions.decide(actor=catalogue.world.users["curator"], job=job, kind="skip")
    annotation_id = job.annotation_id
    job.annotation.delete()  # e.g. a contributor's mistaken box, removed by an operator
    assert Decision.objects.filter(pk=decision.pk, annotation_id=annotation_id).exists()
