"""Camtrap DP 1.0: the export validates offline against the vendored 1.0.2 profile and table schemas
(frictionless for the tables and their keys, jsonschema for datapackage.json); the zip uploaded alone
through Bulk upload gives back the same individuals, sightings, boxes and identities in a fresh project;
an invalid package is refused with its problems, and a partner's export keeps blurred places blurred."""

from __future__ import annotations

import csv
import io
import zipfile

from django.core.files.base import ContentFile
from django.test import Client

from catalog.bulk import services as bulk
from catalog.exports import camtrap_dp
from catalog.models import BatchState, UploadBatch
from resight import services as platform
from resight.models import Project, Right, SharingAgreement
from resight.permissions import forget_grants
from tests.catalog.test_interchange import catalogue
from tests.conftest import World


def download(world: World, user: str) -> dict[str, bytes]:
    client = Client()
    client.force_login(world.users[user])
    response = client.get(f"/projects/{world.project.pk}/export/camtrap-dp.zip")
    assert response.status_code == 200, response.content[:300]
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def upload(world: World, files: dict[str, bytes], slug: str) -> tuple[Project, UploadBatch]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    curator = world.users["curator"]
    copy = platform.project_create(
        actor=world.users["admin"], organization=world.project.organization, name=slug.title(), slug=slug
    )
    forget_grants(curator)
    batch = bulk.batch_create(actor=curator, project=copy)
    batch.source_zip.save("photos.zip", ContentFile(buffer.getvalue()), save=True)
    return copy, bulk.batch_check(actor=curator, batch=batch, inline=True)


def test_the_export_validates_offline_and_round_trips(world: World) -> None:
    files = download(world, "curator")
    assert {"datapackage.json", "deployments.csv", "media.csv", "observations.csv"} <= set(files)
    assert camtrap_dp.validate(files) == []
    observations = list(csv.DictReader(io.StringIO(files["observations.csv"].decode())))
    assert {o["individualID"] for o in observations} == {"L1", "Z1"}
    assert all(0 <= float(o["bboxX"]) <= 1 for o in observations)

    copy, batch = upload(world, files, "copy")
    assert batch.state == BatchState.VALID, (batch.problems, batch.error)
    batch = bulk.batch_import(actor=world.users["curator"], batch=batch, inline=True)
    assert batch.state in (BatchState.MATCHING, BatchState.DONE), batch.error
    assert catalogue(copy) == catalogue(world.project)


def test_an_invalid_package_is_refused_with_its_problems(world: World) -> None:
    files = download(world, "curator")
    rows = files["observations.csv"].decode().splitlines()
    header = rows[0].split(",")
    broken = rows[1].split(",")
    broken[header.index("bboxX")] = "5"  # outside 0..1
    broken[header.index("observationType")] = "dragon"
    files["observations.csv"] = "\n".join([rows[0], ",".join(broken), *rows[2:]]).encode()
    problems = camtrap_dp.validate(files)
    assert any("bboxX" in p for p in problems) and any("dragon" in p for p in problems), problems
    _, batch = upload(world, files, "broken")
    assert batch.state == BatchState.FAILED and "not valid" in batch.error


def test_a_partners_package_keeps_blurred_places_blurred(world: World) -> None:
    agreement = SharingAgreement.objects.get(grantee__slug="share-view")
    agreement.rights = [Right.VIEW, Right.EXPORT]
    agreement.save()
    files = download(world, "share_view")
    assert camtrap_dp.validate(files) == []
    deployments = {
        d["deploymentID"]: d for d in csv.DictReader(io.StringIO(files["deployments.csv"].decode()))
    }
    leopard = deployments[f"sighting-{world.sighting.pk}"]
    assert (leopard["latitude"], leopard["longitude"], leopard["locationName"]) == ("-1.2", "35.1", "")
