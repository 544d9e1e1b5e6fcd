"""Health endpoints, and a full media disk: uploads refused with 507, nothing half-stored."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from catalog.models import MediaAsset
from resight import health
from tests.conftest import World, photo_bytes
from tests.worker import Worker, wait_for


def test_liveness_answers_without_sign_in_or_database(client) -> None:
    # No database fixture: any query would fail the request.
    response = client.get("/health/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def _ready(client) -> tuple[int, dict]:
    cache.delete(health.WORKER_COUNTS_KEY)  # the worker count is kept a few seconds; ask again each time
    response = client.get("/health/ready/")
    return response.status_code, response.json()


@pytest.mark.usefixtures("transactional_db")
def test_readiness_fails_without_workers_and_passes_once_every_queue_has_one(client, worker: Worker) -> None:
    status, body = _ready(client)
    assert status == 503
    assert body["status"] == "failing"
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["broker"]["ok"] and checks["media_disk"]["ok"]
    assert checks["workers"] == {"ok": False, "detail": {"interactive": 0, "bulk": 0, "training": 0}}

    worker.queues = "interactive,bulk,training"
    worker.start()
    status, body = wait_for(lambda: (r := _ready(client))[0] == 200 and r, timeout=180, step=0.5)
    assert body["checks"]["workers"]["detail"] == {"interactive": 1, "bulk": 1, "training": 1}
    assert body["checks"]["media_disk"]["detail"]["free_bytes"] > 0


@pytest.fixture
def small_disk(tmp_path: Path, settings) -> Iterator[Path]:
    """A 2 MiB tmpfs as the media folder: a disk that really fills up."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root")
    settings.MEDIA_ROOT = mount
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(disk: Path, leave_bytes: int) -> Path:
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * max(0, free - leave_bytes))
    return filler


def _upload(client: APIClient, world: World, seed: int):
    photo = io.BytesIO(photo_bytes(seed=seed, size=(1200, 900)))
    photo.name = "trap.jpg"
    data = {"project": world.project.pk, "sighting": world.sighting.pk, "file": photo}
    return client.post("/api/media-assets/", data, format="multipart")


def test_a_full_media_disk_refuses_uploads_with_507_and_keeps_nothing(
    world: World, api_client_for, small_disk: Path, settings
) -> None:
    client = api_client_for(world.users["curator"])
    filler = _fill(small_disk, leave_bytes=40_000)  # room for the original, not for its renditions
    before = MediaAsset.objects.count()

    refused = _upload(client, world, seed=71)
    assert refused.status_code == 507, refused.content
    assert "nothing was stored" in refused.json()["detail"]
    assert refused["Retry-After"]
    assert MediaAsset.objects.count() == before
    assert sorted(p.name for p in small_disk.rglob("*") if p.is_file()) == ["filler"]  # no partial file

    settings.RESIGHT_MIN_FREE_MEDIA_BYTES = 1024**2
    assert health.media_disk().ok is False  # readiness says so before the next upload fails

    filler.unlink()
    accepted = _upload(client, world, seed=71)  # the same photo, now that there is room
    assert accepted.status_code == 201, accepted.content
    asset = MediaAsset.objects.get(pk=accepted.json()["id"])
    assert all(Path(f.path).is_file() for f in (asset.file, asset.preview, asset.thumbnail))


def test_a_full_disk_refuses_the_sighting_form_with_a_page(world: World, client, small_disk: Path) -> None:
    client.force_login(world.users["curator"])
    _fill(small_disk, leave_bytes=20_000)
    photo = io.BytesIO(photo_bytes(seed=72, size=(1200, 900)))
    photo.name = "trap.jpg"
    fields = {
        "project": world.project.pk,
        "observed_at": "2026-04-01T05:30",
        "time_zone": "UTC",
        "latitude": "-1.3",
        "longitude": "35.0",
        "photos": [photo],
    }
    response = client.post("/sightings/new/", fields)
    assert response.status_code == 507
    assert b"nothing was stored" in response.content
    assert MediaAsset.objects.filter(original_filename="trap.jpg").count() == 0
