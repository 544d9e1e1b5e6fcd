"""A match searches exactly what the sighting's project may be matched against, whoever uploads: the owning
organisation's projects and the projects that share match-against with it (for the query's species)."""

from __future__ import annotations

from catalog import services as catalog_services
from identification.matching import services as matching_services
from resight.models import Organization, Project, Right, SharingAgreement
from resight.permissions import projects_matched_from
from tests.conftest import World, make_user


def leopard_photo(world: World):
    return catalog_services.annotation_create(
        actor=world.users["curator"],
        media_asset=world.asset,
        species=world.leopard,
        box=(5, 5, 60, 60),
        match_now=False,
    )


def test_an_operators_upload_searches_no_private_project_of_another_organisation(world: World) -> None:
    operator = make_user("operator", is_superuser=True, is_staff=True)
    private = world.other_project  # another organisation's, shared with nobody
    annotation = leopard_photo(world)
    job = matching_services.match_job_start(actor=operator, annotation=annotation)
    assert private.pk not in job.project_ids
    assert job.project_ids == [world.project.pk]
    # The same photo matched by the project's own curator searches the same catalogues.
    assert matching_services.match_job_start(
        actor=world.users["curator"], annotation=annotation
    ).project_ids == (job.project_ids)


def test_a_member_of_two_organisations_does_not_carry_one_into_the_others_matches(world: World) -> None:
    curator = world.users["curator"]
    curator.memberships.create(organization=world.other_project.organization, role="curator")
    job = matching_services.match_job_start(actor=curator, annotation=leopard_photo(world))
    assert world.other_project.pk not in job.project_ids


def test_match_against_agreements_count_for_their_species_only(world: World) -> None:
    partner_org = Organization.objects.create(name="Partner", slug="partner-org")
    partner_project = Project.objects.create(organization=partner_org, name="Partner's", slug="p")
    zebra_only = SharingAgreement.objects.create(
        project=world.project, grantee=partner_org, rights=[Right.MATCH]
    )
    zebra_only.species.set([world.zebra])
    assert world.project.pk in projects_matched_from(partner_project, world.zebra.pk)
    assert world.project.pk not in projects_matched_from(partner_project, world.leopard.pk)
    # A view or curate right is no match-against right; an expired agreement counts for nothing.
    zebra_only.rights = [Right.VIEW, Right.CURATE]
    zebra_only.save()
    assert world.project.pk not in projects_matched_from(partner_project, world.zebra.pk)
    # Every project of the owning organisation is searched.
    second = Project.objects.create(organization=world.project.organization, name="Second", slug="second")
    assert set(projects_matched_from(world.project, world.leopard.pk)) == {world.project.pk, second.pk}
