"""Media on an S3-compatible server (django-storages): the shared storage of a cluster without a shared
folder. moto's S3 server runs here (pip-installable, offline) in place of MinIO or AWS. The web tier stores
an upload in the bucket, a worker in its own process reads it from there and matches it, every file the
platform wrote is an object of the bucket and nothing reaches the local media folder, and the
permission-checked media view streams the stored bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from moto.server import ThreadedMotoServer

from catalog import synthetic
from catalog.models import Annotation
from identification.matching import loaded, store
from identification.models import JobState, LocalFeatureSet, MatchJob
from resight import backup
from resight.conf.cluster import free_port
from resight.conf.settings import media_storage
from tests.conftest import Catalogue
from tests.worker import Worker, empty_broker, wait_for

BUCKET = "resight-media"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "resight", "AWS_SECRET_ACCESS_KEY": "resight-secret"}


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_media(s3_server: str, settings, monkeypatch) -> Iterator[dict[str, str]]:
    """The platform's media in a new bucket, configured as an operator would: through the environment."""
    env = {
        "RESIGHT_MEDIA_S3_BUCKET": BUCKET,
        "RESIGHT_MEDIA_S3_ENDPOINT_URL": s3_server,
        "RESIGHT_MEDIA_S3_REGION": "us-east-1",
        **CREDENTIALS,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = bucket_client(s3_server)
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {**settings.STORAGES, "default": media_storage(env)}
    yield env
    for key in objects(s3_server):
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


def bucket_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def objects(endpoint: str) -> set[str]:
    pages = bucket_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


@pytest.mark.usefixtures("transactional_db")
def test_a_photo_stored_in_the_bucket_is_matched_by_a_worker_and_served(
    s3_media: dict[str, str], catalogue: Catalogue, api_client_for, media_root: Path, settings
) -> None:
    world = catalogue.world
    endpoint = s3_media["RESIGHT_MEDIA_S3_ENDPOINT_URL"]
    empty_broker()
    worker = Worker(media_root)
    worker.env = s3_media
    worker.start()
    try:
        api = api_client_for(world.users["curator"])
        shot = synthetic.render(synthetic.make_pattern(500 + 1), seed=4242, size=(640, 480))
        asset = api.post(
            "/api/media-assets/",
            {
                "project": world.project.pk,
                "sighting": world.sighting.pk,
                "file": SimpleUploadedFile("s3.jpg", shot.jpeg, content_type="image/jpeg"),
            },
            format="multipart",
        )
        assert asset.status_code == 201, asset.content
        x, y, width, height = shot.box
        annotation = api.post(
            "/api/annotations/",
            {"media_asset": asset.json()["id"], "species": world.leopard.pk, "x": x, "y": y, "width": width,
             "height": height},
            format="json",
        )  # fmt: skip
        assert annotation.status_code == 201, annotation.content
        job = wait_for(
            lambda: (
                (j := MatchJob.objects.filter(annotation_id=annotation.json()["id"]).first()) is not None
                and j.is_final
                and j
            )
        )
    finally:
        worker.stop()
    assert job.state == JobState.DONE, job.error
    assert job.candidates.order_by("rank").first().individual == catalogue.individuals[1]

    # Every file the platform wrote (photos, their display copies, masks, local features) is an object of
    # the bucket, and nothing went to the local media folder.
    names = set(backup.referenced_files())
    assert names and names <= objects(endpoint), names - objects(endpoint)
    assert not [p for p in media_root.rglob("*") if p.is_file()]

    # Local features whose object went (another worker forgot them meanwhile) are extracted and stored again.
    query = Annotation.objects.get(pk=annotation.json()["id"])
    gone = LocalFeatureSet.objects.get(annotation=query)
    bucket_client(endpoint).delete_object(Bucket=BUCKET, Key=gone.file.name)
    store.local_features_of(query, loaded.local_matcher(settings.RESIGHT_LOCAL_MATCHER))
    again = LocalFeatureSet.objects.get(annotation=query)
    assert again.pk != gone.pk and again.file.name in objects(endpoint)

    # The media view streams the object through the permission policy.
    url = reverse("media-file", args=[asset.json()["id"], "original"])
    served = api.get(url)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == shot.jpeg
    assert api_client_for(world.users["outsider"]).get(url).status_code == 404


def test_the_environment_configures_s3_media() -> None:
    storage = media_storage(
        {"RESIGHT_MEDIA_S3_BUCKET": "b", "RESIGHT_MEDIA_S3_ENDPOINT_URL": "http://s3:9000"}
    )
    assert storage["BACKEND"] == "storages.backends.s3.S3Storage"
    assert storage["OPTIONS"]["bucket_name"] == "b" and storage["OPTIONS"]["endpoint_url"] == "http://s3:9000"
    assert storage["OPTIONS"]["file_overwrite"] is False
    assert media_storage({})["BACKEND"] == "resight.storage.MediaStorage"
