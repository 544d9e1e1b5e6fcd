"""Field-ready pages, item by item, in Debian's Chromium at a phone's and a laptop's size: each user is
offered only what they may do (navigation, forms, the comparison's photos and buttons, original links);
New sighting catches mistakes and keeps the photos; the population page keeps its results beside an error;
the lists show pictures and filter; the small things (a decided photo, undo once, blurred coordinates, tags
once per sighting, codes after the project's pattern, notifications in words, agreement rights as checkboxes).

Screenshots of every step land in test-artifacts/field-items/<size>/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from catalog import services as catalog_services
from catalog import synthetic
from catalog.models import Annotation, Sighting
from identification.matching import pipeline
from identification.matching import services as matching_services
from identification.models import MatchJob
from resight.models import Organization, Project, Right, Role, SharingAgreement
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_field_layout import LAPTOP, PHONE, log_in
from tests.conftest import PASSWORD, Catalogue, World, add_photo, make_user, photo_bytes, upload

pytestmark = pytest.mark.browser

SIZES = pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])


class Walk:
    """One user's browser at one size, saving a screenshot per step."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int], user: str) -> None:
        self.base = base
        self.folder = ARTIFACTS / "field-items" / f"{viewport['width']}x{viewport['height']}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        log_in(self.page, base, user)

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.folder / f"{self.user}-{name}.png"), full_page=True)

    def nav(self) -> list[str]:
        """The header's links as words, folded away behind Menu or not."""
        return self.page.eval_on_selector_all("header nav a", "els => els.map((a) => a.textContent.trim())")

    def images_broken(self) -> list[str]:
        """Every image on the page that the browser could not show."""
        self.page.wait_for_load_state("networkidle")
        return self.page.eval_on_selector_all(
            "img", "els => els.filter((i) => i.complete && i.naturalWidth === 0).map((i) => i.src)"
        )

    def close(self) -> None:
        self.context.close()


def done_job(annotation: Annotation, user: Any) -> MatchJob:
    job = matching_services.match_job_start(
        actor=user, annotation=annotation, filters={"same_viewpoint": False}
    )
    pipeline.run(job.pk)
    job.refresh_from_db()
    return job


def partner_job(catalogue: Catalogue) -> MatchJob:
    """A photo of the owner's CAT-0 recorded in a partner's own project and matched against the owner's
    catalogue through a view + match-against agreement (the demo's Lakeside University)."""
    world = catalogue.world
    lakeside = Organization.objects.create(name="Lakeside University", slug="lakeside")
    partner = make_user("partner", lakeside, Role.CURATOR)
    SharingAgreement.objects.create(project=world.project, grantee=lakeside, rights=[Right.VIEW, Right.MATCH])
    project = Project.objects.create(organization=lakeside, name="Lakeside", slug="lakeside")
    shot = synthetic.render(synthetic.make_pattern(500), seed=9601, size=(640, 480))
    sighting = catalog_services.sighting_create(
        actor=partner,
        project=project,
        data=catalog_services.SightingData(
            observed_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC), latitude=-1.0, longitude=35.0
        ),
        photos=[upload("lakeside.jpg", shot.jpeg)],
    )
    annotation = catalog_services.annotation_create(
        actor=partner,
        media_asset=sighting.media_assets.get(),
        species=world.leopard,
        box=shot.box,
        viewpoint="left" if shot.facing == "left" else "right",
        body_part="flank",
    )
    return done_job(annotation, partner)


@SIZES
def test_each_user_is_offered_only_what_they_may_do(
    live_server, browser, catalogue: Catalogue, viewport
) -> None:
    world = catalogue.world
    job = partner_job(catalogue)
    lonely_org = Organization.objects.create(name="No Projects Yet", slug="no-projects")
    make_user("newcomer", lonely_org, Role.CONTRIBUTOR)

    viewer = Walk(browser, live_server.url, viewport, "viewer")
    links = viewer.nav()
    assert "New sighting" not in links and "Bulk upload" not in links and "Review" not in links, links
    assert "Sightings" in links and "Individuals" in links
    viewer.shot("dashboard")
    viewer.go(f"/sightings/{world.sighting.pk}/")
    # No link to an original the viewer would get a 403 for; the photo itself shows.
    assert viewer.page.locator("figcaption a", has_text="original").count() == 0
    assert viewer.images_broken() == []
    viewer.shot("sighting-without-original")
    viewer.go("/sightings/new/")
    assert "You may not add sightings" in viewer.page.inner_text("main")
    assert viewer.page.locator("input[type=file]").count() == 0
    viewer.shot("new-sighting-refused")
    viewer.close()

    newcomer = Walk(browser, live_server.url, viewport, "newcomer")
    assert "New sighting" not in newcomer.nav()
    for path, words in (("/sightings/new/", "add sightings"), ("/uploads/", "upload to any project")):
        newcomer.go(path)
        assert f"You may not {words}" in newcomer.page.inner_text("main")
    newcomer.shot("uploads-refused")
    newcomer.close()

    curator = Walk(browser, live_server.url, viewport, "curator")
    assert {"New sighting", "Bulk upload", "Review"} <= set(curator.nav())
    curator.go(f"/sightings/{world.sighting.pk}/")
    original = curator.page.locator("figcaption a", has_text="original")
    assert original.count() == 1
    assert curator.page.request.get(curator.base + original.get_attribute("href")).status == 200
    curator.close()

    partner = Walk(browser, live_server.url, viewport, "partner")
    partner.go(f"/match-jobs/{job.pk}/")
    partner.page.wait_for_selector("#view-candidate img[src]")
    assert partner.images_broken() == []  # the candidate's preview, never an original it may not have
    # The owner's animals are another organisation's: no confirm button, and key 1 posts nothing.
    assert partner.page.locator("button[value=confirm]").count() == 0
    assert partner.page.locator(".candidates").inner_text().count("another organisation's") >= 1
    partner.page.keyboard.press("1")
    partner.page.wait_for_load_state("networkidle")
    assert "Not allowed" not in partner.page.inner_text("body")
    partner.shot("partner-compare")
    partner.close()


def submit(page: Any) -> None:
    """Send the form as a careless client would: the browser's own checks bypassed."""
    page.eval_on_selector("#sighting-form", "form => { form.noValidate = true; }")
    with page.expect_navigation():
        page.click("text=Save sighting")
    page.wait_for_load_state("networkidle")


@SIZES
def test_new_sighting_catches_mistakes_and_keeps_the_photos(
    live_server, browser, world: World, viewport, tmp_path: Path
) -> None:
    world.project.time_zone = "Africa/Nairobi"
    world.project.save()
    photo = tmp_path / "field-photo.jpg"
    photo.write_bytes(photo_bytes(seed=9701, size=(400, 300)))
    walk = Walk(browser, live_server.url, viewport, "contributor")
    page = walk.page
    walk.go("/sightings/new/")
    # The only project, chosen already, with its time zone; a map to place the sighting.
    assert page.input_value("#id_project") == str(world.project.pk)
    assert page.input_value("#id_time_zone") == "Africa/Nairobi"
    page.wait_for_selector("#place-map.leaflet-container")
    box = page.locator("#place-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.input_value("#id_latitude") != "" and page.input_value("#id_longitude") != ""
    # Only the leopard's viewpoints.
    page.select_option("#id_species", str(world.leopard.pk))
    offered = page.eval_on_selector_all(
        "#id_viewpoint option:not([disabled])", "os => os.map((o) => o.value)"
    )
    assert set(offered) <= {"", "unknown", "left", "right"} and {"left", "right"} <= set(offered), offered
    page.check("#id_photos_are_crops")
    walk.shot("new-sighting-empty")

    # Nothing but a time, no photo: refused in words.
    page.fill("#id_observed_at", "2025-05-01T10:00:00")
    submit(page)
    assert "Add at least one photo" in page.inner_text("main")
    walk.shot("new-sighting-no-photo")

    # An impossible uncertainty and a date five years ahead: both refused, the photo kept.
    ahead = (dt.datetime.now() + dt.timedelta(days=5 * 365)).strftime("%Y-%m-%dT%H:%M:%S")
    page.fill("#id_observed_at", ahead)
    page.fill("#id_location_uncertainty_m", "1e23")
    page.set_input_files("#id_photos", str(photo))
    submit(page)
    errors = page.inner_text("#sighting-form")
    assert "uncertainty must lie between" in errors and "between 1900-01-01 and now" in errors, errors
    assert "Kept from your last try: field-photo.jpg" in errors
    assert Sighting.objects.count() == 2  # the world's two: nothing saved
    walk.shot("new-sighting-errors-photo-kept")

    # Possible but unusual (50 km): a warning to confirm, the photo still kept; then saved.
    page.fill("#id_observed_at", "2025-05-01T10:00:00")
    page.fill("#id_location_uncertainty_m", "50000")
    submit(page)
    assert "the place is nearly unknown" in page.inner_text("#sighting-form")
    walk.shot("new-sighting-warning")
    page.check("#id_confirm")
    submit(page)
    page.wait_for_url("**/sightings/*/**")
    sighting = Sighting.objects.latest("created_at")
    assert sighting.location_uncertainty_m == 50000 and sighting.time_zone == "Africa/Nairobi"
    assert [a.original_filename for a in sighting.media_assets.all()] == ["field-photo.jpg"]
    assert sighting.annotations.get().species == world.leopard  # a crop: annotated and matched
    walk.shot("new-sighting-saved")
    walk.close()


@SIZES
def test_population_keeps_its_results_and_lists_show_pictures(
    live_server, browser, catalogue: Catalogue, viewport
) -> None:
    world = catalogue.world
    walk = Walk(browser, live_server.url, viewport, "curator")
    page = walk.page
    url = f"/projects/{world.project.pk}/population/?species={world.leopard.pk}"
    walk.go(url + "&sessions=1")
    text = page.inner_text("main")
    assert "Ensure this value is greater than or equal to 2" in text and "Chapman" in text
    walk.shot("population-bad-sessions")
    walk.go(url + "&boundaries=2026-01-01,%20sometime")
    text = page.inner_text("main")
    assert "sometime" in text and "Invalid isoformat" not in text and "Chapman" in text
    walk.shot("population-bad-boundaries")

    walk.go("/individuals/")
    portraits = page.locator("img.portrait")
    assert portraits.count() >= 5  # L1 and CAT-0 .. CAT-3
    page.eval_on_selector_all("img.portrait", "els => els.forEach((e) => e.scrollIntoView())")
    assert walk.images_broken() == []
    walk.shot("individuals-with-portraits")

    unidentified = catalog_services.sighting_create(
        actor=world.users["contributor"],
        project=world.project,
        data=catalog_services.SightingData(
            observed_at=world.sighting.observed_at, location_name="Hippo pool"
        ),
        photos=[upload("new.jpg", photo_bytes(seed=9801))],
    )
    walk.go("/sightings/")
    rows = page.locator("#sighting-results tbody tr")
    assert rows.count() >= 3
    with page.expect_response(lambda r: "/sightings/" in r.url and "unidentified=on" in r.url):
        page.check("input[name=unidentified]")
    page.wait_for_load_state("networkidle")
    listed = page.eval_on_selector_all(
        "#sighting-results a[href^='/sightings/']", "els => els.map((a) => a.getAttribute('href'))"
    )
    assert f"/sightings/{unidentified.pk}/" in listed and f"/sightings/{world.sighting.pk}/" not in listed
    assert "unidentified=on" in page.url  # the filtered list has an address to share
    walk.shot("sightings-unidentified")
    walk.close()


@SIZES
def test_the_small_things(live_server, browser, catalogue: Catalogue, viewport) -> None:
    world = catalogue.world
    curator = world.users["curator"]
    job = done_job(add_photo(world, 0, seed=9901, day=41), curator)
    other = done_job(add_photo(world, 2, seed=9902, day=42), curator)
    twice = catalog_services.sighting_create(
        actor=curator,
        project=world.project,
        data=catalog_services.SightingData(observed_at=world.sighting.observed_at, location_name="Ford"),
        photos=[upload("a.jpg", photo_bytes(seed=9903)), upload("b.jpg", photo_bytes(seed=9904))],
    )
    for asset in twice.media_assets.all():
        catalog_services.annotation_create(
            actor=curator,
            media_asset=asset,
            species=world.leopard,
            box=(0, 0, 100, 100),
            individual=catalogue.individuals[1],
        )

    walk = Walk(browser, live_server.url, viewport, "curator")
    page = walk.page
    # Confirming: the page says who it is, drops every verdict banner and offers undo once.
    walk.go(f"/match-jobs/{job.pk}/")
    with page.expect_navigation():
        page.click("button[value=confirm][data-key='1']")
    page.wait_for_load_state("networkidle")
    assert "Identified as" in page.inner_text(".verdict.decided")
    assert page.locator(".verdict.new, .verdict.loose, .verdict.filtered").count() == 0
    assert page.locator("button[value=confirm]").count() == 0
    assert page.locator("button[value=undo]").count() == 1
    walk.shot("job-confirmed")
    with page.expect_navigation():
        page.click("button[value=undo]")
    page.wait_for_load_state("networkidle")
    assert page.locator("button[value=undo]").count() == 0
    assert page.locator("button[value=confirm]").count() >= 1
    walk.shot("job-undone")
    # A new individual's code follows the project's pattern (CAT-0 .. CAT-3).
    walk.go(f"/match-jobs/{other.pk}/")
    with page.expect_navigation():
        page.click("button[value=new_individual]")
    page.wait_for_load_state("networkidle")
    assert "Identified as CAT-4" in page.inner_text(".verdict.decided")
    # An animal tagged once per sighting, however many photos show it.
    walk.go("/sightings/?place=Ford")
    tags = page.locator(f"tr:has(a[href='/sightings/{twice.pk}/']) .tag").all_inner_texts()
    assert tags.count(f"Leopard · {catalogue.individuals[1].code}") == 1, tags
    # Notifications in words: species, day and project, not "Match job 14".
    walk.go("/notifications/")
    text = page.inner_text("main")
    assert "Leopard of" in text and "(Big Cats)" in text and "Match job" not in text
    walk.shot("notifications")
    walk.close()

    viewer = Walk(browser, live_server.url, viewport, "viewer")
    viewer.go(f"/sightings/{world.sighting.pk}/")
    where = viewer.page.inner_text("main")
    # A blurred place keeps only its one decimal: never "35" beside "35.10000", never the true point.
    assert (
        "-1.2, 35.1" in where and "blurred" in where and "35.12345" not in where and "35.10000" not in where
    )
    viewer.shot("blurred-location")
    viewer.close()

    get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    agreement = SharingAgreement.objects.filter(project=world.project).earliest("pk")
    admin = Walk(browser, live_server.url, viewport, "root")
    admin.go(f"/admin/resight/sharingagreement/{agreement.pk}/change/")
    rights = admin.page.locator("input[type=checkbox][name=rights]")
    assert rights.count() == 4 and admin.page.locator("textarea[name=rights]").count() == 0
    assert admin.page.locator("input[type=checkbox][name=rights]:checked").count() == len(agreement.rights)
    admin.shot("agreement-rights")
    admin.close()
