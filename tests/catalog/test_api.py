"""The REST API end to end: token auth, create/update/list with filters and pagination, schema and docs."""

from __future__ import annotations

import io
import re

from rest_framework.test import APIClient

from catalog.models import Annotation, Individual
from resight.models import AuditEvent
from tests.conftest import PASSWORD, World, photo_bytes


def token_client(username: str) -> APIClient:
    anonymous = APIClient()
    response = anonymous.post("/api/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def test_token_auth_and_a_full_contribution(world: World) -> None:
    client = token_client("curator")
    sighting = client.post(
        "/api/sightings/",
        {
            "project": world.project.pk,
            "observed_at": "2026-04-01T05:30:00+03:00",
            "time_zone": "Africa/Nairobi",
            "latitude": -1.3,
            "longitude": 35.0,
            "location_name": "Camp",
            "observer": "A. Ranger",
        },
        format="json",
    )
    assert sighting.status_code == 201, sighting.content
    sighting_id = sighting.json()["id"]
    photo = io.BytesIO(photo_bytes(seed=60))
    photo.name = "trap.jpg"
    asset = client.post(
        "/api/media-assets/",
        {"project": world.project.pk, "sighting": sighting_id, "file": photo},
        format="multipart",
    )
    assert asset.status_code == 201, asset.content
    body = asset.json()
    assert (body["width"], body["height"], body["image_format"]) == (320, 240, "JPEG")
    assert client.get(body["urls"]["preview"]).status_code == 200
    annotation = client.post(
        "/api/annotations/",
        {
            "media_asset": body["id"],
            "species": world.zebra.pk,
            "x": 10,
            "y": 10,
            "width": 100,
            "height": 80,
            "body_part": "flank",
            "individual": world.zebra_individual.pk,
        },
        format="json",
    )
    assert annotation.status_code == 201, annotation.content
    assert annotation.json()["sighting"] == sighting_id
    # The annotation's identity is visible from the individual's side.
    rows = client.get("/api/sightings/", {"individual": world.zebra_individual.pk}).json()["results"]
    assert {r["id"] for r in rows} == {world.zebra_sighting.pk, sighting_id}
    assert AuditEvent.objects.filter(
        action="annotation.create", object_id=str(annotation.json()["id"])
    ).exists()


def test_invalid_input_gets_field_errors(world: World) -> None:
    client = token_client("curator")
    outside = client.post(
        "/api/annotations/",
        {
            "media_asset": world.asset.pk,
            "species": world.leopard.pk,
            "x": 300,
            "y": 0,
            "width": 100,
            "height": 10,
        },
        format="json",
    )
    assert outside.status_code == 400 and "inside the 320x240 photo" in str(outside.json()["box"])
    bad_viewpoint = client.post(
        "/api/annotations/",
        {
            "media_asset": world.asset.pk,
            "species": world.leopard.pk,
            "x": 0,
            "y": 0,
            "width": 10,
            "height": 10,
            "viewpoint": "front",
        },
        format="json",
    )
    assert bad_viewpoint.status_code == 400 and "viewpoint" in bad_viewpoint.json()
    wrong_species = client.patch(
        f"/api/annotations/{world.annotation.pk}/", {"individual": world.zebra_individual.pk}, format="json"
    )
    assert wrong_species.status_code == 400 and "another species" in str(wrong_species.json())
    half_point = client.post(
        "/api/sightings/",
        {"project": world.project.pk, "observed_at": "2026-04-01T05:30Z", "latitude": 10},
        format="json",
    )
    assert half_point.status_code == 400 and "longitude" in half_point.json()
    duplicate_code = client.post(
        "/api/individuals/",
        {"project": world.project.pk, "species": world.leopard.pk, "code": "L1"},
        format="json",
    )
    assert duplicate_code.status_code == 400
    malformed = client.generic("POST", "/api/sightings/", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert Annotation.objects.count() == 2 and Individual.objects.filter(code="L1").count() == 1


def test_lists_paginate_filter_and_search(world: World) -> None:
    client = token_client("curator")
    for i in range(60):
        client.post(
            "/api/individuals/",
            {
                "project": world.project.pk,
                "species": world.zebra.pk,
                "code": f"Z{i + 100}",
                "sex": "female" if i % 2 else "male",
            },
            format="json",
        )
    page = client.get("/api/individuals/").json()
    assert page["count"] == 62 and len(page["results"]) == 50 and page["next"]
    assert client.get("/api/individuals/", {"sex": "female"}).json()["count"] == 30
    assert client.get("/api/individuals/", {"species": world.leopard.pk}).json()["count"] == 1
    assert client.get("/api/individuals/", {"search": "Z10"}).json()["count"] == 10  # Z100-Z109


def test_species_are_shared_but_edited_by_operators_only(world: World) -> None:
    curator = token_client("curator")
    assert curator.get("/api/species/").json()["count"] == 2
    denied = curator.post(
        "/api/species/", {"common_name": "Lion", "scientific_name": "Panthera leo"}, format="json"
    )
    assert denied.status_code == 403
    world.users["curator"].is_staff = True
    world.users["curator"].save()
    created = curator.post(
        "/api/species/",
        {"common_name": "Lion", "scientific_name": "Panthera leo", "locations_sensitive": True},
        format="json",
    )
    assert created.status_code == 201, created.content


def test_project_creation_needs_organisation_admin(world: World) -> None:
    admin = token_client("admin")
    org = world.project.organization_id
    assert (
        admin.post(
            "/api/projects/", {"organization": org, "name": "New", "slug": "new"}, format="json"
        ).status_code
        == 201
    )
    curator = token_client("curator")
    assert (
        curator.post(
            "/api/projects/", {"organization": org, "name": "N2", "slug": "n2"}, format="json"
        ).status_code
        == 400
    )  # not an organisation they administer


def test_openapi_schema_and_docs_are_served_locally(world: World) -> None:
    client = APIClient()
    client.force_authenticate(world.users["viewer"])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/sightings/", "/api/media-assets/", "/api/annotations/", "/api/individuals/{id}/"):
        assert path in paths
    docs = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in docs
    # Every script, style and link is served by the instance (offline). Checked on the page's URLs, not on
    # its text: a random CSRF token may spell "cdn" (the flake of issue 16).
    linked = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", docs)
    assert linked and all(url.startswith(("/", "#", "data:")) for url in linked), linked
    assert not re.search(r"//cdn\.|jsdelivr|unpkg|cdnjs", docs)


def test_a_created_or_edited_individual_answers_its_counts_like_a_read(world: World) -> None:
    client = token_client("curator")
    created = client.post(
        "/api/individuals/",
        {"project": world.project.pk, "species": world.leopard.pk, "code": "L9"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["annotation_count"] == created.json()["sighting_count"] == 0
    edited = client.patch(f"/api/individuals/{world.leopard_individual.pk}/", {"name": "Spot"}, format="json")
    assert edited.status_code == 200, edited.content
    read = client.get(f"/api/individuals/{world.leopard_individual.pk}/").json()
    assert edited.json() == read and read["annotation_count"] == read["sighting_count"] == 1


def test_sighting_time_filters_take_any_utc_offset_and_refuse_times_beyond_the_calendar(world: World) -> None:
    client = token_client("curator")

    def ids(**query: str) -> set[int]:
        response = client.get("/api/sightings/", query)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    # The leopard was seen at 2026-03-01 06:00 UTC: 23:59+18:00 the day before is 05:59 UTC.
    assert ids(observed_after="2026-03-01T23:59:00+18:00") == {world.sighting.pk, world.zebra_sighting.pk}
    assert ids(observed_before="2026-02-28T12:00:00-18:01") == {world.sighting.pk}
    for query in (
        {"observed_after": "9999-12-31T23:00:00-12:00"},
        {"observed_before": "0001-01-01T00:00+01:00"},
    ):
        refused = client.get("/api/sightings/", query)
        assert refused.status_code == 400 and set(refused.json()) == set(query), refused.content


def test_sighting_filters_on_ids_refuse_what_is_not_an_id(world: World) -> None:
    client = token_client("curator")
    species = client.get("/api/sightings/", {"species": world.zebra.pk}).json()["results"]
    assert [row["id"] for row in species] == [world.zebra_sighting.pk]
    for value in ("1.5", f"{world.zebra.pk}.0", "-3", "1e3", "\u0661", "9" * 19):
        refused = client.get("/api/sightings/", {"species": value, "individual": value})
        assert refused.status_code == 400, value
        assert set(refused.json()) == {"species", "individual"}, value
    assert client.get("/api/sightings/", {"species": "9" * 18}).json()["count"] == 0


def test_a_batch_csv_is_documented_as_the_multipart_field_the_endpoint_reads(world: World) -> None:
    client = token_client("curator")
    schema = client.get("/api/schema/", {"format": "json"}).json()
    body = schema["paths"]["/api/upload-batches/{id}/csv/"]["post"]["requestBody"]
    assert body["required"] and list(body["content"]) == ["multipart/form-data"]
    request = schema["components"]["schemas"]["BatchCsvRequest"]
    assert request["required"] == ["csv_file"] and request["properties"]["csv_file"]["format"] == "binary"
    batch = client.post("/api/upload-batches/", {"project": world.project.pk}, format="json").json()
    missing = client.post(f"/api/upload-batches/{batch['id']}/csv/", {}, format="multipart")
    assert missing.status_code == 400 and list(missing.json()) == ["csv_file"]
    csv_file = io.BytesIO(b"file,time\na.jpg,2026-03-01T06:00:00Z\n")
    csv_file.name = "meta.csv"
    sent = client.post(f"/api/upload-batches/{batch['id']}/csv/", {"csv_file": csv_file}, format="multipart")
    assert sent.status_code == 200, sent.content
