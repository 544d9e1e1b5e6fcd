"""A new install matches with the shipped base model; an install keeps its active version; an operator
switches to another published model from the registry: the catalogue is re-embedded in the background
(matching keeps the active version meanwhile) and the switch happens when it is complete; a model whose
weights are not on the machine stops with its reason on the page."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from catalog.models import Annotation
from identification import tasks
from identification.matching import loaded, pipeline, spaces
from identification.matching import services as matching_services
from identification.models import AnnotationEmbedding, EmbeddingSpace
from ml_service import embedding
from tests.conftest import Catalogue, World, add_photo, make_user


@pytest.fixture
def operator_page(world: World) -> Client:
    page = Client()
    page.force_login(make_user("ops", is_staff=True))
    return page


def test_a_new_install_matches_with_the_shipped_base_model(catalogue: Catalogue, settings) -> None:
    settings.RESIGHT_MASK_REFINER = ""
    assert spaces.active_space().key == embedding.ResightBase().key
    query = add_photo(catalogue.world, 2, seed=2_999, day=60)  # a new photo of CAT-2
    job = matching_services.match_job_start(actor=catalogue.world.users["curator"], annotation=query)
    pipeline.run(job.pk)
    job.refresh_from_db()
    assert job.state == "done", job.error
    assert job.space.model_name == "resight-base"
    assert {c.model_key for c in job.candidates.all()} == {job.space.key}
    first = job.candidates.order_by("rank").first()
    assert first is not None and first.individual == catalogue.individuals[2]


def test_an_install_with_an_active_version_keeps_it(world: World, settings) -> None:
    settings.RESIGHT_EMBEDDING_MODEL = "imagenet-mobilenetv2"
    kept = spaces.active_space()
    settings.RESIGHT_EMBEDDING_MODEL = "resight-base"  # the upgrade's new default
    assert spaces.active_space() == kept and kept.model_name == "imagenet-mobilenetv2"


def test_an_operator_switches_to_a_published_model_through_background_reembedding(
    world: World, settings, operator_page: Client
) -> None:
    settings.RESIGHT_MASK_REFINER = ""
    for i in range(3):
        add_photo(world, i, seed=40 + i)
    before = spaces.active_space()
    assert before.model_name == "resight-base"

    member = Client()
    member.force_login(world.users["curator"])
    assert member.post("/models/adopt/", {"model": "imagenet-mobilenetv2"}).status_code == 403
    page = operator_page.get("/models/").content.decode()
    assert 'action="/models/adopt/"' in page and '<option value="miewid-msv3">' in page
    answer = operator_page.post("/models/adopt/", {"model": "no-such-model"}, follow=True)
    assert "Choose one of the published models" in answer.content.decode()
    assert EmbeddingSpace.objects.count() == 1

    answer = operator_page.post("/models/adopt/", {"model": "imagenet-mobilenetv2"}, follow=True)
    assert "Re-embedding the catalogue with imagenet-mobilenetv2@" in answer.content.decode()
    new = EmbeddingSpace.objects.get(model_name="imagenet-mobilenetv2")
    assert not new.is_active and spaces.active_space() == before  # matching keeps the active version
    assert "re-embedding" in operator_page.get("/models/").content.decode()

    tasks.reembed_space(new.pk)  # what the training worker runs
    new.refresh_from_db()
    assert new.is_active and new.ready_at is not None
    embedded = set(AnnotationEmbedding.objects.filter(space=new).values_list("annotation_id", flat=True))
    assert embedded == set(Annotation.objects.values_list("pk", flat=True)) and len(embedded) >= 3
    tasks.reembed_space(new.pk)  # a redelivered task is a no-op
    assert AnnotationEmbedding.objects.filter(space=new).count() == len(embedded)
    answer = operator_page.post("/models/adopt/", {"model": "imagenet-mobilenetv2"}, follow=True)
    assert "Matching uses imagenet-mobilenetv2@" in answer.content.decode()


def test_a_model_whose_weights_are_missing_stops_with_its_reason(
    world: World, settings, operator_page: Client, monkeypatch, tmp_path: Path
) -> None:
    settings.RESIGHT_MASK_REFINER = ""
    add_photo(world, 1, seed=5)
    monkeypatch.setenv("RESIGHT_MIEWID_WEIGHTS", str(tmp_path))  # a folder without the weights
    loaded.embedding_model.cache_clear()
    try:
        operator_page.post("/models/adopt/", {"model": "miewid-msv3"})
        space = EmbeddingSpace.objects.get(model_name="miewid-msv3")
        tasks.reembed_space(space.pk)
    finally:
        loaded.embedding_model.cache_clear()
    space.refresh_from_db()
    assert not space.is_active and "no model.safetensors or pytorch_model.bin" in space.error
    assert spaces.active_space().model_name == "resight-base"
    assert "stopped: " in operator_page.get("/models/").content.decode()
