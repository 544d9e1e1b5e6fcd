"""A contributor logs in, records a sighting with two photos, and sees them on the sighting page."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.models import MediaAsset, Sighting
from resight.models import Membership, Organization, Project, Role
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, make_user, photo_bytes

pytestmark = pytest.mark.browser


@pytest.fixture
def field_project(transactional_db) -> Project:
    org = Organization.objects.create(name="Field Org", slug="field-org")
    make_user("ranger", org, Role.CONTRIBUTOR)
    assert Membership.objects.filter(user__username="ranger").exists()
    return Project.objects.create(organization=org, name="Ridge Survey", slug="ridge")


def test_login_new_sighting_with_two_photos(
    live_server, page, field_project: Project, tmp_path: Path
) -> None:
    photos = []
    for i in (1, 2):
        path = tmp_path / f"trap-{i}.jpg"
        path.write_bytes(photo_bytes(seed=70 + i, size=(640, 480)))
        photos.append(str(path))

    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url  # the dashboard asks for a login first
    page.fill("#id_username", "ranger")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("text=Ridge Survey").count() == 1

    page.click("text=New sighting")
    page.select_option("#id_project", str(field_project.pk))
    page.fill("#id_observed_at", "2026-06-01T05:45:00")
    page.fill("#id_time_zone", "Africa/Nairobi")
    page.fill("#id_latitude", "-1.2921")
    page.fill("#id_longitude", "36.8219")
    page.fill("#id_location_name", "Ridge camera 4")
    page.set_input_files("#id_photos", photos)
    page.click("text=Save sighting")
    page.wait_for_url("**/sightings/*/")

    sighting = Sighting.objects.get(project=field_project)
    assert sighting.media_assets.count() == 2
    images = page.locator(".photo img")
    assert images.count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('.photo img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = images.evaluate_all("els => els.map(e => e.naturalWidth)")
    assert all(w == 640 for w in widths)  # previews decoded in the browser at their real size
    assert page.locator("text=2026-06-01 05:45:00").count() == 1  # shown in the sighting's own zone
    assert set(MediaAsset.objects.values_list("original_filename", flat=True)) == {"trap-1.jpg", "trap-2.jpg"}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sighting-page.png"), full_page=True)
