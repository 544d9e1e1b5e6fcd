"""The wildlife-datasets layout and COCO: export a project's annotated photos (images/ and metadata.csv, or
annotations.json), import the zip's photos and metadata file through Bulk upload into a fresh project, and
get back the same individuals, sightings, annotations (box, viewpoint, body part, species) and identities.
A partner sees blurred places blurred and gets the photos of a sensitive species without their EXIF."""

from __future__ import annotations

import csv
import io
import json
import posixpath
import zipfile
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image, ImageDraw

from catalog import services
from catalog.bulk import services as bulk
from catalog.models import Annotation, BatchState
from resight import services as platform
from resight.models import Project, Right, SharingAgreement
from resight.permissions import forget_grants
from tests.conftest import World, photo_bytes, upload


def download(world: World, user: str, project: Project, kind: str = "wildlife-datasets") -> zipfile.ZipFile:
    client = Client()
    client.force_login(world.users[user])
    response = client.get(f"/projects/{project.pk}/export/{kind}.zip")
    assert response.status_code == 200, response.content[:300]
    return zipfile.ZipFile(io.BytesIO(response.content))


def catalogue(project: Project) -> dict[str, Any]:
    """What must survive the round trip, keyed by the photo's uploaded name (without the export's prefix)."""
    photos, groups = {}, defaultdict(set)
    for a in Annotation.objects.filter(sighting__project=project).select_related(
        "individual", "sighting", "media_asset", "species"
    ):
        name = (
            a.media_asset.original_filename.split("-", 1)[-1]
            if project.slug == "copy"
            else (a.media_asset.original_filename)
        )
        s = a.sighting
        photos[name] = (
            a.box,
            a.viewpoint,
            a.body_part,
            a.species.scientific_name,
            a.individual.code if a.individual else None,
            s.observed_at,
            s.time_zone,
            s.latitude,
            s.longitude,
            s.location_name,
        )
        groups[s.pk].add(name)
    return {"photos": photos, "sightings": sorted(sorted(g) for g in groups.values())}


METADATA = {"wildlife-datasets": "metadata.csv", "coco": "annotations.json"}


@pytest.mark.parametrize("kind", METADATA)
def test_export_then_import_into_a_fresh_project_gives_back_the_catalogue(world: World, kind: str) -> None:
    curator = world.users["curator"]
    # One more photo of L1 in the leopard's sighting, and an unidentified animal elsewhere.
    second = services.media_asset_create(
        actor=curator,
        project=world.project,
        sighting=world.sighting,
        photo=upload("again.jpg", photo_bytes(77)),
    )
    services.annotation_create(
        actor=curator,
        media_asset=second,
        species=world.leopard,
        box=(30, 40, 120, 90),
        viewpoint="right",
        body_part="flank",
        individual=world.leopard_individual,
    )
    stranger = services.sighting_create(
        actor=curator,
        project=world.project,
        data=services.SightingData(observed_at=world.sighting.observed_at, location_name="Ford"),
        photos=[upload("stranger.jpg", photo_bytes(seed=78))],
    )
    services.annotation_create(
        actor=curator, media_asset=stranger.media_assets.get(), species=world.zebra, box=(1, 2, 50, 60)
    )
    archive = download(world, "curator", world.project, kind)
    metadata = archive.read(METADATA[kind])
    if kind == "coco":
        coco = json.loads(metadata)
        assert {a["identity"] for a in coco["annotations"]} == {"L1", "Z1", None}
        assert {c["name"] for c in coco["categories"]} == {"Panthera pardus", "Equus quagga"}
        assert all(a["area"] == a["bbox"][2] * a["bbox"][3] for a in coco["annotations"])
        assert {i["file_name"] for i in coco["images"]} == {
            n for n in archive.namelist() if n != METADATA[kind]
        }
    else:
        header = metadata.decode().splitlines()[0].split(",")
        assert header[:7] == ["image_id", "identity", "path", "bbox", "date", "species", "orientation"]
        rows = list(csv.DictReader(io.StringIO(metadata.decode())))
        assert {r["identity"] for r in rows} == {"L1", "Z1", "unknown"} and len(rows) == 4

    copy = platform.project_create(
        actor=world.users["admin"], organization=world.project.organization, name="Copy", slug="copy"
    )
    forget_grants(curator)
    batch = bulk.batch_create(actor=curator, project=copy, csv_file=io.BytesIO(metadata))
    for name in archive.namelist():
        if name.startswith("images/"):
            bulk.batch_add_photo(actor=curator, batch=batch, name=name, stream=io.BytesIO(archive.read(name)))
    batch = bulk.batch_check(actor=curator, batch=batch, inline=True)
    assert batch.state == BatchState.VALID, batch.problems
    batch = bulk.batch_import(actor=curator, batch=batch, inline=True)
    assert batch.state in (BatchState.MATCHING, BatchState.DONE), batch.error

    assert catalogue(copy) == catalogue(world.project)
    assert set(copy.individuals.values_list("code", "species__common_name")) == {
        ("L1", "Leopard"),
        ("Z1", "Plains zebra"),
    }


def test_a_partner_gets_blurred_places_and_photos_without_exif(world: World) -> None:
    agreement = SharingAgreement.objects.get(grantee__slug="share-view")
    agreement.rights = [Right.VIEW, Right.EXPORT]
    agreement.save()
    world.asset.file.save("leopard.jpg", ContentFile(photo_bytes(seed=1, lat=-1.23456, lon=35.12345)))
    archive = download(world, "share_view", world.project)
    rows = {r["species"]: r for r in csv.DictReader(io.StringIO(archive.read("metadata.csv").decode()))}
    leopard = rows["Panthera pardus"]
    assert (leopard["latitude"], leopard["longitude"], leopard["location_name"]) == ("-1.2", "35.1", "")
    image = Image.open(io.BytesIO(archive.read(leopard["path"])))
    assert not image.getexif(), "a blurred sighting's photo keeps no EXIF"
    assert posixpath.dirname(leopard["path"]) == "images"
    curator_rows = csv.DictReader(
        io.StringIO(download(world, "curator", world.project).read("metadata.csv").decode())
    )
    assert next(r for r in curator_rows if r["species"] == "Panthera pardus")["latitude"] == "-1.23456"


def test_a_broken_coco_file_is_refused_in_words(world: World) -> None:
    from django.core.exceptions import ValidationError

    for body in (b'{"images": []}', b"{not json", b'{"images": 3, "annotations": [], "categories": []}'):
        with pytest.raises(ValidationError, match="not a COCO document"):
            bulk.batch_create(actor=world.users["curator"], project=world.project, csv_file=io.BytesIO(body))


def test_the_coco_export_carries_masks_as_run_lengths(world: World) -> None:
    mask = Image.new("L", (200, 150), 0)
    ImageDraw.Draw(mask).ellipse((20, 10, 180, 140), fill=255)
    png = io.BytesIO()
    mask.save(png, format="PNG")
    services.annotation_set_mask(annotation=world.annotation, png=png.getvalue(), source="test")
    coco = json.loads(download(world, "curator", world.project, "coco").read("annotations.json"))
    leopard = next(a for a in coco["annotations"] if a["id"] == world.annotation.pk)
    rle = leopard["segmentation"]
    height, width = rle["size"]
    assert (width, height) == (world.asset.width, world.asset.height)
    decoded = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).astype(bool)
    decoded = decoded.reshape((width, height)).T  # column-major runs
    x, y, w, h = world.annotation.box
    assert decoded.sum() == leopard["area"] == (np.asarray(mask) > 127).sum()
    assert np.array_equal(decoded[y : y + h, x : x + w], np.asarray(mask) > 127)
    assert not decoded[:y].any() and not decoded[:, :x].any()
