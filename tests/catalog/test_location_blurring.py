"""Whatever is blurred for a user stays blurred everywhere: search, filters, media, and the radius filter of
match jobs; and a species-scoped grantee sees (and curates) only the animals of its species."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from rest_framework.test import APIClient

from catalog import selectors, services
from catalog.models import Sighting, Viewpoint
from identification.matching import pipeline
from identification.matching import services as matching_services
from resight.models import Organization, Project, Right, Role, SharingAgreement
from tests.conftest import Catalogue, World, add_photo, make_user


def api(world: World, user: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(world.users[user])
    return client


@pytest.mark.parametrize("user", ["viewer", "share_view", "contributor", "share_curate_leopard", "curator"])
def test_search_never_matches_a_place_name_the_user_sees_blurred(world: World, user: str) -> None:
    precise = user in ("curator", "share_curate_leopard")
    found = set()
    # Letter by letter, as the probing went: every prefix of the hidden name.
    for prefix in ("D", "De", "Den", "Den r", "Den rock"):
        rows = api(world, user).get("/api/sightings/", {"search": prefix}).json()["results"]
        found |= {row["id"] for row in rows}
    assert (world.sighting.pk in found) is precise
    # The observer and notes of a blurred sighting stay searchable: they are shown to the user anyway.
    services.sighting_update(
        actor=world.users["curator"], sighting=world.sighting, changes={"observer": "Wanjiku"}
    )
    rows = api(world, user).get("/api/sightings/", {"search": "Wanjiku"}).json()["results"]
    assert [row["id"] for row in rows] == [world.sighting.pk]


def test_blurred_sightings_are_one_rule_for_pages_the_api_and_search(world: World) -> None:
    viewer = world.users["viewer"]
    blurred = set(selectors.blurred_sightings(viewer).values_list("sighting_id", flat=True))
    assert blurred == {world.sighting.pk}
    row = selectors.sightings_for(viewer).get(pk=world.sighting.pk)
    assert not selectors.location_is_precise(viewer, row)
    assert selectors.sighting_location(viewer, row).name == ""
    assert not selectors.blurred_sightings(world.users["curator"]).exists()


def test_a_match_only_partner_cannot_pin_a_leopard_with_tiny_radii(catalogue: Catalogue) -> None:
    """The partner moves its own query sighting onto the leopard's exact point and asks for candidates
    within a few metres: the catalogue's point is compared blurred, so the leopard is found within the
    blurred cell's distance and not closer."""
    world = catalogue.world
    partner = world.users["share_match"]
    partner_org = partner.memberships.get().organization
    partner_project = Project.objects.create(organization=partner_org, name="Partner", slug="partner")
    exact = catalogue.individuals[0]
    lat, lon = -1.23456, 35.12345  # its den, off the blur grid: the blurred point is about 4 km away
    Sighting.objects.filter(annotations__individual=exact).update(latitude=lat, longitude=lon)
    query_photo = add_photo(world, 0, seed=7400, day=120)
    sighting = services.sighting_create(
        actor=partner,
        project=partner_project,
        data=services.SightingData(
            observed_at=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), latitude=lat, longitude=lon
        ),
        photos=[services.PhotoUpload("q.jpg", query_photo.media_asset.file.open("rb"))],
    )
    query = services.annotation_create(
        actor=partner,
        media_asset=sighting.media_assets.get(),
        species=world.leopard,
        box=query_photo.box,
        viewpoint=Viewpoint.UNKNOWN,
        match_now=False,
    )

    def candidates(radius_km: float) -> set[int]:
        job = matching_services.match_job_start(
            actor=partner, annotation=query, filters={"radius_km": radius_km, "same_viewpoint": False}
        )
        pipeline.run(job.pk)
        job.refresh_from_db()
        assert job.state == "done", job.error
        return set(job.candidates.values_list("individual_id", flat=True))

    assert world.project.pk in matching_services.match_job_start(actor=partner, annotation=query).project_ids
    assert exact.pk not in candidates(
        0.05
    )  # 50 m around the exact point: the blurred point is kilometres off
    assert exact.pk in candidates(25)  # the blurred cell is where the partner may know it to be


def test_a_species_scoped_grantee_sees_only_its_species_on_a_shared_sighting(world: World) -> None:
    """A zebra-only curate grantee on a sighting with a leopard and a zebra in one photo: the zebra is
    shown, the leopard neither named nor coded, the place blurred (the leopard is sensitive), and the
    grantee may declare the zebra a new individual."""
    org = Organization.objects.create(name="Zebra Trust", slug="zebra-trust")
    grantee = make_user("zebra_curator", org, Role.CURATOR)
    agreement = SharingAgreement.objects.create(project=world.project, grantee=org, rights=[Right.CURATE])
    agreement.species.set([world.zebra])
    zebra = services.annotation_create(
        actor=world.users["curator"],
        media_asset=world.asset,
        species=world.zebra,
        box=(220, 100, 90, 80),
        match_now=False,
    )
    page = Client()
    page.force_login(grantee)
    html = page.get(f"/sightings/{world.sighting.pk}/").content.decode()
    assert "Plains zebra" in html
    assert "Leopard" not in html and world.leopard_individual.code not in html.replace("L1 ", "")
    assert ">L1<" not in html and "Den rock" not in html
    listed = APIClient()
    listed.force_authenticate(grantee)
    ids = {
        row["id"]
        for row in listed.get("/api/annotations/", {"sighting": world.sighting.pk}).json()["results"]
    }
    assert ids == {zebra.pk}
    row = listed.get(f"/api/sightings/{world.sighting.pk}/").json()
    assert row["location_blurred"] is True and row["location_name"] == ""
    assert listed.get(f"/media/{world.asset.pk}/original/").status_code == 403

    job = matching_services.match_job_start(actor=world.users["curator"], annotation=zebra)
    decided = listed.post(f"/api/match-jobs/{job.pk}/decide/", {"kind": "new_individual"}, format="json")
    assert decided.status_code == 201, decided.content
    zebra.refresh_from_db()
    assert zebra.individual is not None and zebra.individual.species == world.zebra
    assert zebra.individual.project == world.project
