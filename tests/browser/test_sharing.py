"""Agreements in the browser (Debian's Chromium): the owner's admin proposes sharing a project, the partner's
admin accepts it on the Sharing page, the partner's members see the project; the owner revokes it and they
see nothing; an embargo hides the project until its day. Screenshots in test-artifacts/sharing/."""

from __future__ import annotations

import datetime as dt

import pytest

from resight.models import Organization, Project, Role
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_field_layout import LAPTOP, PHONE, log_in
from tests.conftest import World, make_user

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_propose_accept_see_revoke(live_server, browser, world: World, viewport) -> None:
    lakeside = Organization.objects.create(name="Lakeside University", slug="lakeside-uni")
    make_user("lake_admin", lakeside, Role.ADMIN)
    make_user("lake_curator", lakeside, Role.CURATOR)
    folder = ARTIFACTS / "sharing" / f"{viewport['width']}x{viewport['height']}"
    folder.mkdir(parents=True, exist_ok=True)
    base = live_server.url
    project = f"{base}/projects/{world.project.pk}/"

    def as_user(name: str):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        log_in(page, base, name)
        return context, page

    owner_context, owner = as_user("admin")
    owner.goto(f"{base}/sharing/")
    owner.select_option("#id_project", str(world.project.pk))
    owner.select_option("#id_grantee", str(lakeside.pk))
    owner.check("input[name=rights][value=view]")
    owner.select_option("#id_species", str(world.leopard.pk))
    owner.screenshot(path=str(folder / "1-propose.png"), full_page=True)
    with owner.expect_navigation():
        owner.click("button:text('Propose')")
    assert "Proposed to Lakeside University" in owner.inner_text("body")

    partner_context, partner = as_user("lake_curator")
    assert partner.goto(project).status == 404  # nothing until accepted

    answer_context, answer = as_user("lake_admin")
    answer.goto(f"{base}/sharing/")
    shared = answer.locator("article.agreement", has_text="Big Cats")
    assert "see the project's sightings, photos and identified animals" in shared.inner_text()
    answer.screenshot(path=str(folder / "2-answer.png"), full_page=True)
    with answer.expect_navigation():
        shared.locator("button:text('Accept')").click()
    assert "Active" in answer.locator("article.agreement", has_text="Big Cats").inner_text()

    assert partner.goto(project).status == 200
    # An embargo hides the project again until its day, then reveals it.
    today = dt.datetime.now(dt.UTC).date()
    Project.objects.filter(pk=world.project.pk).update(embargo_until=today + dt.timedelta(days=1))
    assert partner.goto(project).status == 404
    answer.goto(f"{base}/sharing/")
    assert "Embargoed until" in answer.locator("article.agreement", has_text="Big Cats").inner_text()
    answer.screenshot(path=str(folder / "3-embargoed.png"), full_page=True)
    Project.objects.filter(pk=world.project.pk).update(embargo_until=today)
    assert partner.goto(project).status == 200
    partner.goto(f"{base}/sightings/")
    assert f"/sightings/{world.sighting.pk}/" in partner.content()  # the leopard's sighting
    assert f"/sightings/{world.zebra_sighting.pk}/" not in partner.content()  # leopards only
    partner.screenshot(path=str(folder / "4-partner-sees.png"), full_page=True)

    owner.goto(f"{base}/sharing/")
    with owner.expect_navigation():
        owner.locator("article.agreement", has_text="Lakeside").locator("button:text('Revoke')").click()
    assert "Revoked" in owner.locator("article.agreement", has_text="Lakeside").inner_text()
    owner.screenshot(path=str(folder / "5-revoked.png"), full_page=True)
    assert partner.goto(project).status == 404
    partner.goto(f"{base}/sightings/")
    assert f"/sightings/{world.sighting.pk}/" not in partner.content()
    for context in (owner_context, partner_context, answer_context):
        context.close()
