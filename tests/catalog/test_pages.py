"""Pages as a curator uses them: search with htmx fragments, annotation by typed box, time zones."""

from __future__ import annotations

from django.test import Client

from catalog import services
from catalog.models import Annotation, Species
from resight.models import Project
from resight.permissions import forget_grants
from tests.conftest import World, photo_bytes, upload


def client_for(world: World, user: str) -> Client:
    client = Client()
    client.force_login(world.users[user])
    return client


def test_individual_search_returns_a_fragment_for_htmx_and_a_page_without(world: World) -> None:
    client = client_for(world, "viewer")
    full = client.get("/individuals/", {"q": "L1"})
    assert full.status_code == 200 and b"<html" in full.content and b"L1" in full.content
    assert b"Z1" not in full.content.split(b'id="individual-results"')[1]
    fragment = client.get(
        "/individuals/",
        {"species": world.zebra.pk},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="individual-results",
    )
    assert b"<html" not in fragment.content
    assert b"Z1" in fragment.content and b">L1<" not in fragment.content


def test_annotation_by_typed_box(world: World) -> None:
    client = client_for(world, "contributor")
    url = f"/sightings/{world.sighting.pk}/annotations/"
    form = {
        "media_asset": world.asset.pk,
        "species": world.leopard.pk,
        "x": 5,
        "y": 5,
        "width": 50,
        "height": 40,
        "viewpoint": "right",
        "body_part": "flank",
    }
    assert client.post(url, form).status_code == 302
    assert Annotation.objects.filter(media_asset=world.asset).count() == 2
    outside = client.post(url, form | {"x": 300})
    assert outside.status_code == 400 and b"inside the 320x240 photo" in outside.content
    viewer = client_for(world, "viewer")
    assert viewer.post(url, form).status_code == 403
    assert Annotation.objects.filter(media_asset=world.asset).count() == 2


def test_sighting_time_is_shown_in_its_own_zone(world: World) -> None:
    sighting = world.sighting
    sighting.time_zone = "Africa/Nairobi"
    sighting.save()
    html = client_for(world, "curator").get(f"/sightings/{sighting.pk}/").content.decode()
    assert "2026-03-01 09:00:00 (Africa/Nairobi, UTC+0300)" in html  # stored 06:00 UTC


def test_new_codes_follow_the_projects_pattern(world: World) -> None:
    curator = world.users["curator"]
    mara = Project.objects.create(organization=world.project.organization, name="Mara", slug="mara")
    forget_grants(curator)  # a new project: the user's grants are read again, as a new request would
    for code, species in (
        ("MARA-L001", world.leopard),
        ("MARA-L003", world.leopard),
        ("MARA-Z07", world.zebra),
    ):
        services.individual_create(actor=curator, project=mara, species=species, code=code)
    assert services.next_individual_code(mara, world.leopard) == "MARA-L004"
    assert services.next_individual_code(mara, world.zebra) == "MARA-Z08"
    cheetah = Species.objects.create(common_name="Cheetah", scientific_name="Acinonyx jubatus")
    assert services.next_individual_code(mara, cheetah) == "MARA-C001"  # the project's prefix, its width
    empty = Project.objects.create(organization=world.project.organization, name="Fresh", slug="fresh")
    assert services.next_individual_code(empty, cheetah) == "C-0001"


def test_the_sightings_index_filters_and_keeps_blurred_places_unsearchable(world: World) -> None:
    curator, viewer = Client(), Client()
    curator.force_login(world.users["curator"])
    viewer.force_login(world.users["viewer"])
    unidentified = services.sighting_create(
        actor=world.users["contributor"],
        project=world.project,
        data=services.SightingData(observed_at=world.sighting.observed_at, location_name="Hippo pool"),
        photos=[upload("new.jpg", photo_bytes(seed=811))],
    )

    def listed(client: Client, **params: str) -> set[int]:
        html = client.get("/sightings/", params).content.decode()
        return {
            s.pk
            for s in (world.sighting, world.zebra_sighting, unidentified)
            if f"/sightings/{s.pk}/" in html
        }

    assert listed(curator) == {world.sighting.pk, world.zebra_sighting.pk, unidentified.pk}
    assert listed(curator, unidentified="on") == {unidentified.pk}
    assert listed(curator, species=str(world.zebra.pk)) == {world.zebra_sighting.pk}
    assert listed(curator, recorded_by="contributor") == {unidentified.pk}
    assert listed(curator, after="2026-03-02", before="2026-03-02") == {world.zebra_sighting.pk}
    assert listed(curator, place="Den") == {world.sighting.pk}
    assert listed(viewer, place="Den") == set()  # the leopard's den is blurred for a viewer
    assert listed(viewer, place="Hippo") == {unidentified.pk}
    assert curator.get("/sightings/", {"after": "0001-01-01"}).status_code == 200


def test_the_individuals_list_shows_a_photo_of_each(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    html = client.get("/individuals/").content.decode()
    assert f"/annotations/{world.annotation.pk}/crop/" in html and 'alt="L1"' in html


def test_pages_offer_no_form_to_those_who_may_not_use_it(world: World) -> None:
    viewer = Client()
    viewer.force_login(world.users["viewer"])
    dashboard = viewer.get("/").content.decode()
    assert "New sighting" not in dashboard and "Bulk upload" not in dashboard and ">Review<" not in dashboard
    for url, words in (("/sightings/new/", "add sightings"), ("/uploads/", "upload to any project")):
        html = viewer.get(url).content.decode()
        assert f"You may not {words}" in html and 'type="file"' not in html
