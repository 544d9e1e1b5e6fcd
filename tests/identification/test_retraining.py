"""The retraining loop end to end on a small synthetic catalogue: curate -> threshold reached -> the beat task
starts a run -> training -> evaluation against the active model on the same split -> promotion ->
re-embedding -> matching uses the new version (and a rollback switches back); a worse candidate keeps the
active version; an interrupted run resumes without touching the active version."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from catalog import services as catalog_services
from identification import tasks
from identification.matching import pipeline, spaces
from identification.matching import services as matching_services
from identification.models import EmbeddingSpace, RunState, TrainingRun
from identification.registry import retraining, trainer
from tests.conftest import World, add_photo, make_user
from tests.worker import Worker, wait_for


@pytest.fixture
def curated(world: World, settings, tmp_path: Path) -> World:
    settings.RESIGHT_MODELS_DIR = tmp_path / "models"
    settings.RESIGHT_TRAIN_EPOCHS = 2
    settings.RESIGHT_TRAIN_IMAGE_SIZE = 64
    settings.RESIGHT_TRAIN_BATCH_SIZE = 8
    settings.RESIGHT_RETRAIN_THRESHOLD = 30
    settings.RESIGHT_MASK_REFINER = ""  # GrabCut is tested elsewhere; here it would only cost time
    for i in range(8):
        individual = catalog_services.individual_create(
            actor=world.users["curator"], project=world.project, species=world.leopard, code=f"T-{i}"
        )
        for s in range(5):
            add_photo(world, 20 + i, seed=20_000 + 10 * i + s, individual=individual, day=5 * s + i)
    return world


def active_key() -> str:
    return EmbeddingSpace.objects.get(is_active=True).key


def test_curated_identities_train_a_model_that_is_promoted_and_used(curated: World, settings) -> None:
    start_key = spaces.active_space().key
    settings.RESIGHT_RETRAIN_THRESHOLD = 1000
    tasks.check_retraining()  # the beat's tick: not enough curated yet
    assert not TrainingRun.objects.exists()
    settings.RESIGHT_RETRAIN_THRESHOLD = 30
    settings.RESIGHT_RETRAIN_MIN_GAIN = -100.0  # promote whatever it scores (the gate is tested below)
    tasks.check_retraining()
    run = TrainingRun.objects.get()
    assert run.state == RunState.QUEUED and run.curated_annotations >= 40
    assert retraining.start(trigger="threshold") is None  # one run at a time

    trainer.run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.DONE, run.error
    assert [e["epoch"] for e in run.history] == [1, 2]
    assert run.config["init"].endswith("resight-base.safetensors")  # continues from the active base model
    assert {"active", "candidate", "active_unseen", "candidate_unseen", "gain"} <= set(run.metrics)
    assert run.split["test"] > 0 and run.split["unseen_individuals"] >= 1
    assert run.species_counts["Panthera pardus"]["individuals"] >= 6  # unseen test animals never train
    assert run.candidate is not None and run.candidate.key == active_key() != start_key
    assert run.candidate.key == f"finetuned-mobilenetv2@run-{run.pk}"
    assert run.candidate.reembedded == run.candidate.reembed_total > 0

    query = add_photo(curated, 23, seed=29_999, day=90)
    job = matching_services.match_job_start(actor=curated.users["curator"], annotation=query)
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.space.key == run.candidate.key and job.state == "done", job.error
    assert {c.model_key for c in job.candidates.all()} == {run.candidate.key}

    page = Client()
    page.force_login(curated.users["curator"])
    registry = page.get("/models/", {"run": run.pk}).content.decode()
    assert run.candidate.key in registry and "Training loss" in registry and "Candidate" in registry
    drawn = page.get("/models/map.svg", {"space": run.candidate.pk, "species": curated.leopard.pk})
    assert drawn["Content-Type"] == "image/svg+xml" and b"<svg" in drawn.content
    old = EmbeddingSpace.objects.get(key=start_key)
    assert page.post(f"/models/{old.pk}/activate/").status_code == 403  # operators only
    staff = curated.users["admin"]
    staff.is_staff = True
    staff.save()
    page.force_login(staff)
    assert page.post(f"/models/{old.pk}/activate/").status_code == 302  # one switch back: the rollback
    assert active_key() == start_key


def test_a_worse_candidate_keeps_the_active_version(curated: World, settings) -> None:
    start_key = spaces.active_space().key
    settings.RESIGHT_RETRAIN_MIN_GAIN = 100.0  # no candidate gains 100 points
    with pytest.raises(PermissionDenied):  # an organisation's admin is no operator of the instance
        retraining.start(trigger="manual", actor=curated.users["admin"], force=True)
    run = retraining.start(trigger="manual", actor=make_user("operator", is_staff=True), force=True)
    assert run is not None
    trainer.run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.REJECTED and run.candidate is None
    assert active_key() == start_key
    assert EmbeddingSpace.objects.count() == 1


def test_interrupted_training_and_reembedding_resume_without_touching_the_active_version(
    curated: World, settings, monkeypatch
) -> None:
    start_key = spaces.active_space().key
    settings.RESIGHT_RETRAIN_MIN_GAIN = -100.0
    run = retraining.start(trigger="manual", force=True)
    assert run is not None
    trainer.run(run.pk, stop_after_epochs=1)  # the worker dies after the first epoch
    run.refresh_from_db()
    assert run.state == RunState.TRAINING and len(run.history) == 1 and active_key() == start_key

    monkeypatch.setattr(spaces, "REEMBED_BATCH", 5)
    real_reembed = spaces.reembed
    monkeypatch.setattr(spaces, "reembed", lambda space_id: real_reembed(space_id, batches=2))
    trainer.run(run.pk)  # resumes from the checkpoint; re-embedding is cut short again
    run.refresh_from_db()
    assert run.state == RunState.REEMBEDDING and [e["epoch"] for e in run.history] == [1, 2]
    assert run.candidate is not None and run.candidate.reembedded == 10
    assert active_key() == start_key  # matching still uses the active version

    monkeypatch.setattr(spaces, "reembed", real_reembed)
    trainer.run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.DONE and active_key() == run.candidate.key


@pytest.mark.django_db(transaction=True)
def test_a_training_worker_killed_mid_run_resumes_after_restart(
    curated: World, worker: Worker, tmp_path: Path, settings
) -> None:
    """A real Celery worker on the training queue is killed (SIGKILL) after its first epoch; restarted, it
    resumes from the checkpoint and finishes, and the active version never changed meanwhile."""
    start_key = spaces.active_space().key
    worker.queues = "training"
    worker.env = {
        "RESIGHT_MODELS_DIR": str(settings.RESIGHT_MODELS_DIR),
        "RESIGHT_TRAIN_EPOCHS": "4",
        "RESIGHT_TRAIN_IMAGE_SIZE": "64",
        "RESIGHT_TRAIN_BATCH_SIZE": "8",
        "RESIGHT_MASK_REFINER": "",
        "RESIGHT_RETRAIN_MIN_GAIN": "100",  # the candidate is rejected: the active version stays
    }
    settings.RESIGHT_TRAIN_EPOCHS = 4
    run = retraining.start(trigger="manual", force=True)
    assert run is not None
    tasks.run_training.delay(run.pk)  # what the on-commit hook does in the platform
    worker.start()
    wait_for(lambda: len(TrainingRun.objects.get(pk=run.pk).history) >= 1, timeout=300)
    worker.kill()
    stranded = TrainingRun.objects.get(pk=run.pk)
    assert stranded.state == RunState.TRAINING and len(stranded.history) < 4
    assert active_key() == start_key
    worker.start()  # worker_ready frees the dead worker's claim and enqueues the run again
    finished = wait_for(
        lambda: (
            (r := TrainingRun.objects.get(pk=run.pk)).state
            not in (RunState.QUEUED, RunState.TRAINING, RunState.EXPORTING, RunState.EVALUATING)
            and r
        ),
        timeout=300,
    )
    assert finished.state == RunState.REJECTED, finished.error
    assert [e["epoch"] for e in finished.history] == [1, 2, 3, 4]  # resumed, not restarted
    assert active_key() == start_key
