"""Every page works under the Content-Security-Policy in Chromium: no violation reported (neither as a
securitypolicyviolation event nor on the console), no script error, and each page's own script visibly did its
work (Leaflet drew the map, the box script set the photo up, htmx swapped, Swagger UI rendered, the admin's
widgets came up)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from catalog.bulk import services as bulk
from identification.matching import pipeline
from identification.matching import services as matching_services
from tests.conftest import PASSWORD, World, add_photo, photo_bytes

pytestmark = pytest.mark.browser

# Reported to the test from every document the page loads (the binding survives navigations).
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.reportViolation({
    page: location.pathname + location.search, directive: e.effectiveDirective, blocked: e.blockedURI,
    source: e.sourceFile, line: e.lineNumber, sample: e.sample,
  });
});
"""


class Watch:
    """What Chromium says about the pages: CSP violations, console errors and uncaught script errors."""

    def __init__(self, page: Any) -> None:
        self.violations: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.expose_function("reportViolation", self._violation)
        page.add_init_script(LISTEN)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        self.page = page

    def _violation(self, violation: dict[str, Any]) -> None:
        self.violations.append(violation)

    def _console(self, message: Any) -> None:
        text, source = message.text, message.location.get("url", "")
        if message.type == "error" or "Content Security Policy" in text or "htmx:eval" in text:
            self.console.append(f"{self.page.url}: {message.type}: {text} ({source})")

    def goto(self, url: str) -> Any:
        response = self.page.goto(url)
        assert response is not None and response.ok, (url, response and response.status)
        header = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in header and "unsafe-eval" not in header, (url, header)
        assert "frame-ancestors 'none'" in header, (url, header)
        return response

    def assert_clean(self) -> None:
        self.page.wait_for_timeout(300)  # events of the last page still on their way
        assert self.violations == []
        assert self.errors == []
        assert self.console == []


def login(watch: Watch, base: str, username: str) -> None:
    watch.goto(f"{base}/login/")
    watch.page.fill("#id_username", username)
    watch.page.fill("#id_password", PASSWORD)
    watch.page.click("form button[type=submit] >> text=Log in")
    watch.page.wait_for_url(f"{base}/")


def test_every_page_works_under_the_content_security_policy(
    live_server, page, world: World, tmp_path
) -> None:
    curator = world.users["curator"]
    query = add_photo(world, 0, seed=9301, day=40)  # a second leopard photo: a match job with a candidate
    job = matching_services.match_job_start(
        actor=curator, annotation=query, filters={"same_viewpoint": False}
    )
    pipeline.run(job.pk)  # also notifies the curator (the bell, the notifications page)
    batch = bulk.batch_create(actor=curator, project=world.project, species=world.leopard)
    get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    photo = tmp_path / "trap-cam.jpg"
    photo.write_bytes(photo_bytes(seed=9302))

    base = live_server.url
    watch = Watch(page)
    login(watch, base, "curator")  # the login page, anonymous
    page.wait_for_selector("#notification-badge")  # htmx swapped the bell in

    watch.goto(f"{base}/species/")
    watch.goto(f"{base}/projects/{world.project.pk}/")
    watch.goto(f"{base}/individuals/")
    page.fill("input[name=q]", "L1")  # htmx: hx-trigger "input changed delay:300ms from:input[name=q]"
    page.wait_for_url("**/individuals/?*q=L1*")
    assert page.locator("#individual-results >> text=Z1").count() == 0

    watch.goto(f"{base}/individuals/{world.leopard_individual.pk}/")
    page.wait_for_selector("#map[data-points]")  # Leaflet drew the sightings: markers and the grid tiles
    page.wait_for_selector("#map .leaflet-overlay-pane path.leaflet-interactive", state="attached")
    page.wait_for_selector("#map .leaflet-tile-container canvas", state="attached")

    watch.goto(f"{base}/sightings/{world.sighting.pk}/")
    frame = page.locator(".photo .frame[data-ready]").first  # boxes.js set the photo up
    frame.locator(".box[data-annotation] .handle").wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.photo img')].every(i => i.naturalWidth > 0)"
    )
    box = frame.bounding_box()
    assert box is not None
    scale = box["width"] / world.asset.width
    page.mouse.move(box["x"] + 240 * scale, box["y"] + 180 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 290 * scale, box["y"] + 225 * scale, steps=5)
    page.mouse.up()  # a new box drawn by dragging fills the annotation form
    assert abs(int(page.input_value("form.filled [name=x]")) - 240) <= 2
    assert abs(int(page.input_value("form.filled [name=width]")) - 50) <= 2

    watch.goto(f"{base}/match-jobs/{job.pk}/")
    page.wait_for_selector("#compare[data-ready] #pair-count:not(:empty)")  # compare.js ran
    watch.goto(f"{base}/review/")
    watch.goto(f"{base}/projects/{world.project.pk}/population/")
    assert page.locator("figure svg").count() >= 2  # matplotlib's SVGs with their <style>
    watch.goto(f"{base}/models/")
    watch.goto(f"{base}/notifications/")
    watch.goto(f"{base}/sightings/new/")

    watch.goto(f"{base}/uploads/")
    watch.goto(f"{base}/uploads/{batch.pk}/")
    with page.expect_navigation():  # uploader.js sends the photo (XHR), then reloads the page
        page.set_input_files("#photo-form input[name=photos]:not([webkitdirectory])", str(photo))
    page.wait_for_selector("h2 >> text=1 received")
    assert batch.items.count() == 1

    watch.goto(f"{base}/api/docs/")
    page.wait_for_selector("#swagger-ui .opblock-tag", timeout=30_000)  # Swagger UI read the schema
    watch.goto(f"{base}/api/")  # DRF's browsable API
    watch.goto(f"{base}/api/individuals/")
    watch.assert_clean()

    watch.goto(f"{base}/")
    page.click("text=Log out")
    login(watch, base, "root")
    watch.goto(f"{base}/admin/")
    watch.goto(f"{base}/admin/catalog/sighting/")  # date hierarchy, filters, actions
    watch.goto(f"{base}/admin/catalog/sighting/{world.sighting.pk}/change/")  # inline, date/time shortcuts
    page.wait_for_selector(".datetimeshortcuts")
    watch.goto(f"{base}/admin/resight/organization/add/")  # prepopulated slug, autocomplete inline
    page.locator("#id_name").press_sequentially("Night Watch")  # prepopulate.js listens to keyup
    page.wait_for_function("() => document.querySelector('#id_slug').value === 'night-watch'")
    watch.goto(f"{base}/admin/resight/sharingagreement/add/")  # filter_horizontal widget
    page.wait_for_selector(".selector-available")
    watch.assert_clean()
