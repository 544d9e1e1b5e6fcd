"""Writes that link two objects ask the policy about both ends and never reach across organisations.

The matrix: who (the owner's roles, a grantee holding view + curate on every species, a grantee holding
curate on leopards only, a match-only partner, an outsider, the operator) x which link (an annotation
assigned to an individual, a merge, a split, a confirmed candidate) x where the ends live (the owner's
project, another project of the owner, the grantee's own project, a species outside the agreement).
Expected outcomes are written out by hand from the product rules:
- a link inside what the owner shared (same organisation) is allowed to whoever may curate both ends;
- a link from the owner's photos or individuals into another organisation's catalogue, or back, is refused
  (403) for everyone, the operator too, and changes nothing;
- an end the user may not see at all is a 404 (the API's related fields answer 400 for unknown ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from catalog import services as catalog_services
from catalog.models import Annotation, Individual, IndividualStatus
from resight.models import Organization, Project, Right, Role, SharingAgreement
from resight.permissions import forget_grants
from tests.conftest import World, add_photo, make_user


@dataclass
class Setup:
    world: World
    owner_second: Individual  # a second leopard of the owner's project
    owner_other_project: Individual  # a leopard of another project of the owner's organisation
    grantee_own: Individual  # a leopard of the grantee's own project
    owner_annotation: Annotation  # an identified leopard photo of the owner (L1's)


@pytest.fixture
def setup(world: World) -> Setup:
    curator = world.users["curator"]
    # A grantee with view + curate on everything of the owner's project, and a project of its own.
    grantee_org = Organization.objects.create(name="Grantee Org", slug="grantee")
    world.users["share_curate_all"] = make_user("share_curate_all", grantee_org, Role.CURATOR)
    SharingAgreement.objects.create(
        project=world.project, grantee=grantee_org, rights=[Right.VIEW, Right.CURATE]
    )
    grantee_project = Project.objects.create(organization=grantee_org, name="Grantee's", slug="grantee-own")
    # The leopard-only grantee runs a project of its own too.
    leopard_org = world.users["share_curate_leopard"].memberships.get().organization
    Project.objects.create(organization=leopard_org, name="Leopards elsewhere", slug="leo-own")
    second = catalog_services.individual_create(
        actor=curator, project=world.project, species=world.leopard, code="L2"
    )
    add_photo(world, 1, seed=7001, individual=second)
    other_project = Project.objects.create(
        organization=world.project.organization, name="Second site", slug="s2"
    )
    owner_other = Individual.objects.create(project=other_project, species=world.leopard, code="S2-L1")
    grantee_own = Individual.objects.create(project=grantee_project, species=world.leopard, code="G1")
    for user in world.users.values():
        forget_grants(user)  # each request of a real server reads the user's grants afresh
    return Setup(world, second, owner_other, grantee_own, world.annotation)


def client_for(setup: Setup, user: str) -> APIClient:
    client = APIClient()
    client.force_authenticate(setup.world.users[user])
    return client


def merge(setup: Setup, user: str, source: Individual, target: Individual) -> int:
    body = {"kind": "merge", "individual": source.pk, "target": target.pk}
    return client_for(setup, user).post("/api/identity-changes/", body, format="json").status_code


def assign(setup: Setup, user: str, annotation: Annotation, individual: Individual) -> int:
    url = f"/api/annotations/{annotation.pk}/"
    return client_for(setup, user).patch(url, {"individual": individual.pk}, format="json").status_code


def state() -> tuple[dict[int, int | None], dict[int, str]]:
    return (
        dict(Annotation.objects.values_list("pk", "individual_id")),
        dict(Individual.objects.values_list("pk", "status")),
    )


# (user, source, target, expected status): merges
MERGES = [
    # The attack: a grantee merges the owner's animal into its own catalogue, or back.
    ("share_curate_all", "owner", "grantee_own", 403),
    ("share_curate_all", "grantee_own", "owner", 403),
    ("share_curate_leopard", "owner", "grantee_own", 404),  # its own project is not this grantee's
    # The operator may do everything but this: the owner would lose its individual to another organisation.
    ("operator", "owner", "grantee_own", 403),
    # Within what the owner shared: allowed to those who curate it.
    ("share_curate_all", "owner_second", "owner", 201),
    ("share_curate_leopard", "owner_second", "owner", 201),
    ("curator", "owner_second", "owner", 201),
    ("curator", "owner_second", "owner_other_project", 201),  # another project of the same organisation
    ("share_curate_all", "owner_second", "owner_other_project", 404),  # not shared with the grantee
    ("contributor", "owner_second", "owner", 403),
    ("viewer", "owner_second", "owner", 403),
    ("share_view", "owner_second", "owner", 403),
    ("share_match", "owner_second", "owner", 404),
    ("outsider", "owner_second", "owner", 404),
]


def individual(setup: Setup, name: str) -> Individual:
    return {
        "owner": setup.world.leopard_individual,
        "owner_second": setup.owner_second,
        "owner_other_project": setup.owner_other_project,
        "grantee_own": setup.grantee_own,
    }[name]


@pytest.mark.parametrize(("user", "source", "target", "status"), MERGES)
def test_merges_ask_about_both_ends_and_stay_in_one_organisation(
    setup: Setup, user: str, source: str, target: str, status: int
) -> None:
    if user == "operator":
        setup.world.users["operator"] = make_user("operator", is_superuser=True, is_staff=True)
    before = state()
    got = merge(setup, user, individual(setup, source), individual(setup, target))
    assert got == status
    if status != 201:
        assert state() == before
    else:
        moved = individual(setup, source)
        moved.refresh_from_db()
        assert moved.status == IndividualStatus.MERGED


# (user, annotation's owner, individual, expected status): a photo's animal assigned to an individual
ASSIGNMENTS = [
    ("share_curate_all", "owner", "grantee_own", 403),  # the PATCH onto the grantee's animal
    ("share_curate_all", "grantee", "owner", 403),  # and the reverse
    ("operator", "owner", "grantee_own", 403),
    ("share_curate_all", "owner", "owner_second", 200),  # curate without contribute: identity only
    ("share_curate_leopard", "owner", "owner_second", 200),
    ("curator", "owner", "owner_other_project", 200),  # the same organisation's other project
    ("contributor", "owner", "owner_second", 403),
    ("share_view", "owner", "owner_second", 403),
    ("outsider", "owner", "owner_second", 404),
]


@pytest.mark.parametrize(("user", "photo", "target", "status"), ASSIGNMENTS)
def test_assigning_a_photo_to_an_individual_asks_about_both_ends(
    setup: Setup, user: str, photo: str, target: str, status: int
) -> None:
    if user == "operator":
        setup.world.users["operator"] = make_user("operator", is_superuser=True, is_staff=True)
    annotation = setup.owner_annotation
    if photo == "grantee":
        # A photo in the grantee's own project, of a leopard, not yet identified.
        grantee = setup.world.users["share_curate_all"]
        project = setup.grantee_own.project
        sighting = catalog_services.sighting_create(
            actor=grantee,
            project=project,
            data=catalog_services.SightingData(observed_at=setup.world.sighting.observed_at),
            photos=[catalog_services.PhotoUpload("g.jpg", setup.world.asset.file.open("rb"))],
        )
        annotation = catalog_services.annotation_create(
            actor=grantee,
            media_asset=sighting.media_assets.get(),
            species=setup.world.leopard,
            box=(0, 0, 50, 50),
            match_now=False,
        )
    before = state()
    got = assign(setup, user, annotation, individual(setup, target))
    if status == 404:
        assert got in (400, 404)  # an invisible annotation (404) or an unknown related id (400)
    else:
        assert got == status
    if status != 200:
        assert state() == before
    else:
        annotation.refresh_from_db()
        assert annotation.individual == individual(setup, target)


def test_a_species_scoped_grantee_cannot_assign_outside_its_species(setup: Setup) -> None:
    world = setup.world
    zebra_annotation = world.zebra_sighting.annotations.get()
    other_zebra = Individual.objects.create(project=world.project, species=world.zebra, code="Z2")
    assert assign(setup, "share_curate_leopard", zebra_annotation, other_zebra) == 404
    assert Annotation.objects.get(pk=zebra_annotation.pk).individual == world.zebra_individual


def test_a_grantee_cannot_split_an_owner_individual_into_its_own_catalogue(setup: Setup) -> None:
    # A split always creates the new individual in the split one's project: the grantee curates within
    # the owner's project, never moves photos out of it.
    world = setup.world
    ids = list(Annotation.objects.filter(individual=setup.owner_second).values_list("pk", flat=True))
    add_photo(world, 1, seed=7002, individual=setup.owner_second)
    response = client_for(setup, "share_curate_all").post(
        "/api/identity-changes/",
        {"kind": "split", "individual": setup.owner_second.pk, "annotations": ids, "new_code": "L2-B"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Individual.objects.get(code="L2-B").project == world.project
