"""Field-ready pages: every page on a phone (390 px), a tablet (768 px) and a laptop (1366 px), for every kind
of user, fits the screen, passes axe-core without a serious or critical violation, has reachable navigation
and a favicon; boxes are drawn, moved and resized by touch, and the comparison zooms with two fingers.

Screenshots of every page at every size land in test-artifacts/field/ (with axe's full report)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from catalog.bulk import services as bulk
from identification.matching import pipeline
from identification.matching import services as matching_services
from tests.browser import axe
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, World, add_photo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 768, "height": 1024}
LAPTOP = {"width": 1366, "height": 900}
# The world fixture's users: its organisation's roles, the partners of two sharing agreements, an operator.
USERS = ["curator", "contributor", "viewer", "share_view", "share_curate_leopard", "root"]


def setup_pages(world: World) -> dict[str, str]:
    """A match job with a candidate, a bulk upload, a notification and an operator; the pages to visit."""
    curator = world.users["curator"]
    query = add_photo(world, 0, seed=9401, day=40)
    job = matching_services.match_job_start(
        actor=curator, annotation=query, filters={"same_viewpoint": False}
    )
    pipeline.run(job.pk)  # notifies the curator too: the bell has a count
    batch = bulk.batch_create(actor=curator, project=world.project, species=world.leopard)
    get_user_model().objects.create_superuser("root", "root@example.org", PASSWORD)
    project = world.project.pk
    return {
        "dashboard": "/",
        "species": "/species/",
        "project": f"/projects/{project}/",
        "individuals": "/individuals/",
        "individual": f"/individuals/{world.leopard_individual.pk}/",
        "sighting": f"/sightings/{world.sighting.pk}/",
        "match-job": f"/match-jobs/{job.pk}/",
        "review": "/review/",
        "uploads": "/uploads/",
        "upload": f"/uploads/{batch.pk}/",
        "population": f"/projects/{project}/population/",
        "models": "/models/",
        "notifications": "/notifications/",
        "sharing": "/sharing/",
        "tokens": "/tokens/",
        "webhooks": "/webhooks/",
        "new-sighting": "/sightings/new/",
        "api-docs": "/api/docs/",
    }


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/")


def settle(page: Any, name: str) -> None:
    """Wait for what the page's scripts add (htmx's bell, Swagger UI, the map, the comparison)."""
    page.wait_for_load_state("networkidle")
    if name == "api-docs":
        page.wait_for_selector("#swagger-ui .opblock-tag", timeout=30_000)
    if page.locator(".topbar").count() and page.locator(".topbar .logout").count():
        page.wait_for_selector("#notification-badge", state="attached")
    page.wait_for_timeout(100)


def overflow(page: Any) -> dict[str, Any] | None:
    """None when the page fits the viewport's width, else the widths and the outermost elements too wide."""
    return page.evaluate(
        """() => {
          const width = innerWidth, doc = document.documentElement.scrollWidth;
          if (doc <= width + 1) return null;
          const out = (e) => e.getBoundingClientRect().right > width + 1;
          const classes = (e) => (typeof e.className === "string" ? e.className.trim().split(" ") : []);
          const name = (e) => [e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""), ...classes(e)].join(".");
          const wide = [...document.querySelectorAll("body *")]
            .filter((e) => out(e) && !(e.parentElement && out(e.parentElement)))
            .slice(0, 8).map((e) => name(e) + " right=" + Math.round(e.getBoundingClientRect().right));
          return { innerWidth: width, scrollWidth: doc, elements: wide };
        }"""
    )


def check_favicon(page: Any, base: str) -> None:
    """/favicon.ico (what browsers ask for by themselves) and the icon the pages link answer with an image."""
    first = page.request.get(f"{base}/favicon.ico", max_redirects=0)
    assert first.status in (200, 301, 302), first.status
    icon = page.request.get(f"{base}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/"), icon.headers
    page.goto(f"{base}/login/")
    linked = page.eval_on_selector("link[rel=icon]", "l => l.href")
    answer = page.request.get(linked)
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg"), linked


def visit_all(browser: Any, base: str, pages: dict[str, str], viewport: dict[str, int], run_axe: bool):
    """Every page for every user at one size: screenshots, overflow, axe, nav links. Returns the problems."""
    size = f"{viewport['width']}x{viewport['height']}"
    folder = ARTIFACTS / "field" / size
    folder.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    report: dict[str, Any] = {}
    for user in [None, *USERS]:
        context = browser.new_context(viewport=viewport, bypass_csp=run_axe)
        page = context.new_page()
        if user is None:
            visits = {"login": "/login/"}
            check_favicon(page, base)
        else:
            log_in(page, base, user)
            visits = pages
        who = user or "anonymous"
        for name, path in visits.items():
            response = page.goto(base + path)
            status = response.status if response else 0
            settle(page, name)
            label = f"{size} {who} {name} ({path}, {status})"
            wide = overflow(page)
            if wide is not None:
                problems.append(f"{label}: wider than the screen: {wide}")
            page.screenshot(path=str(folder / f"{who}-{name}.png"), full_page=True)
            if run_axe:
                found = axe.violations(page)
                report[f"{who} {name}"] = found
                problems.extend(axe.describe(label, axe.blocking(found)))
        if user is not None:
            page.goto(base + "/")
            links = page.eval_on_selector_all("header nav a", "els => els.map((a) => a.href)")
            assert links, f"{who} has no navigation"
            for href in links:
                answer = page.request.get(href)
                if answer.status != 200:
                    problems.append(f"{size} {who}: nav link {href} answers {answer.status}")
        context.close()
    if run_axe:
        (folder / "axe.json").write_text(json.dumps(report, indent=1))
    return problems


@pytest.mark.parametrize("viewport", [PHONE, TABLET, LAPTOP], ids=["phone", "tablet", "laptop"])
def test_every_page_fits_and_passes_axe(live_server, browser, world: World, viewport) -> None:
    pages = setup_pages(world)
    problems = visit_all(browser, live_server.url, pages, viewport, run_axe=viewport is not TABLET)
    assert problems == [], "\n".join(problems)


def exposed(context: Any, page: Any, selector: str) -> bool:
    """Whether Chromium's accessibility tree has the element (not ignored, not hidden)."""
    cdp = context.new_cdp_session(page)
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    tree = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node, "fetchRelatives": False})
    cdp.detach()
    return not tree["nodes"][0].get("ignored", False)


def test_the_menu_folds_on_a_phone_and_works_without_javascript(live_server, browser, world: World) -> None:
    base = live_server.url
    for viewport, javascript in [(PHONE, False), (PHONE, True), (TABLET, True), (LAPTOP, True)]:
        context = browser.new_context(viewport=viewport, java_script_enabled=javascript)
        page = context.new_page()
        log_in(page, base, "curator")
        links = page.locator("header nav a")
        names = links.all_inner_texts() if viewport is not PHONE else None
        folded = viewport is PHONE
        summary = page.locator("header details.menu > summary")
        assert summary.is_visible() is folded
        # What Chromium tells screen readers: the links are there unless folded away.
        assert exposed(context, page, "header nav a[href='/models/']") is not folded
        if folded:
            assert not page.get_by_role("link", name="Models").is_visible()
            assert page.get_by_role("link", name="Notifications").is_visible()  # the bell stays out
            summary.click()
            assert page.locator("header details.menu[open]").count() == 1
            assert exposed(context, page, "header nav a[href='/models/']")
        else:
            assert names is not None and "Models" in names
        for link in links.all():
            assert link.is_visible()
            box = link.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
            if folded:
                assert box["height"] >= 44  # a finger's target
        logout = page.get_by_role("button", name="Log out")
        assert logout.is_visible()
        page.screenshot(path=str(ARTIFACTS / f"menu-{viewport['width']}-js-{javascript}.png"))
        # The links are reachable by keyboard: Tab from the brand lands on Dashboard (after opening the menu
        # on a phone, where the summary comes first).
        page.goto(base + "/species/")
        page.focus("header .brand")
        page.keyboard.press("Tab")
        if folded:
            assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
            page.keyboard.press("Enter")
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Dashboard"
        logout.click()
        page.wait_for_url("**/login/")
        context.close()


class Finger:
    """Real touch input through the DevTools protocol: Chromium turns it into touch pointer events, and the
    page's touch-action decides whether the page scrolls instead."""

    def __init__(self, context: Any, page: Any) -> None:
        self.cdp = context.new_cdp_session(page)
        self.page = page

    def _send(self, kind: str, points: list[tuple[float, float]]) -> None:
        touches = [{"x": x, "y": y, "id": i, "radiusX": 4, "radiusY": 4} for i, (x, y) in enumerate(points)]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touches})

    def drag(self, *paths: tuple[tuple[float, float], tuple[float, float]], steps: int = 8) -> None:
        """One finger per (start, end) path, all down together, moved in steps, then lifted."""
        self._send("touchStart", [start for start, _ in paths])
        for i in range(1, steps + 1):
            t = i / steps
            self._send(
                "touchMove",
                [(s[0] + t * (e[0] - s[0]), s[1] + t * (e[1] - s[1])) for s, e in paths],
            )
            self.page.wait_for_timeout(16)
        self._send("touchEnd", [])
        self.page.wait_for_timeout(50)

    def tap(self, x: float, y: float) -> None:
        self._send("touchStart", [(x, y)])
        self._send("touchEnd", [])


def touch_context(browser: Any) -> Any:
    return browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2)


def test_boxes_are_drawn_moved_and_resized_by_touch(live_server, browser, world: World) -> None:
    context = touch_context(browser)
    page = context.new_page()
    log_in(page, live_server.url, "curator")
    page.goto(f"{live_server.url}/sightings/{world.sighting.pk}/")
    frame = page.locator(".photo .frame[data-ready]").first
    page.wait_for_function(
        "() => [...document.querySelectorAll('.photo img')].every(i => i.naturalWidth > 0)"
    )
    toggle = page.get_by_role("button", name="Draw a new box")
    assert toggle.get_attribute("aria-pressed") == "false"
    frame.scroll_into_view_if_needed()
    finger = Finger(context, page)
    annotation = world.annotation

    def at(x: float, y: float) -> tuple[float, float]:
        """Photo pixels to the screen."""
        box = frame.bounding_box()
        assert box is not None
        scale = box["width"] / world.asset.width
        return box["x"] + x * scale, box["y"] + y * scale

    # A finger on the photo outside the boxes scrolls the page: it draws nothing.
    before = page.evaluate("scrollY")
    finger.drag((at(260, 200), at(260, 40)))
    assert page.locator(".box.draft").count() == 0
    assert page.evaluate("scrollY") > before  # the page scrolled under the finger
    page.evaluate("window.scrollTo(0, 0)")
    frame.scroll_into_view_if_needed()

    # A finger on a box moves it (saved through the API); on its corner handle, resizes it.
    finger.drag((at(100, 90), at(130, 110)))
    page.wait_for_selector(".box[data-annotation].saved")
    annotation.refresh_from_db()
    assert (abs(annotation.x - 40) <= 3, abs(annotation.y - 40) <= 3) == (True, True), annotation.box
    assert (annotation.width, annotation.height) == (200, 150)
    handle = page.locator(".box[data-annotation] .handle").bounding_box()
    assert handle is not None
    corner = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    finger.drag((corner, (corner[0] - 40 * frame.bounding_box()["width"] / 320, corner[1])))
    page.wait_for_function(
        "w => document.querySelector('.box[data-annotation]').dataset.box.split(',')[2] < w", arg=180
    )
    page.wait_for_timeout(300)  # the PATCH
    annotation.refresh_from_db()
    assert abs(annotation.width - 160) <= 3 and annotation.height == 150, annotation.box

    # "Draw a new box" (a tap), then a drag that starts inside the existing box draws a new one.
    box = toggle.bounding_box()
    finger.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert toggle.get_attribute("aria-pressed") == "true"
    finger.drag((at(60, 60), at(140, 130)))
    assert toggle.get_attribute("aria-pressed") == "false"  # one drag per press
    assert page.locator(".box.draft").count() == 1
    assert abs(int(page.input_value("form.filled [name=x]")) - 60) <= 3
    assert abs(int(page.input_value("form.filled [name=width]")) - 80) <= 3
    annotation.refresh_from_db()
    assert abs(annotation.x - 40) <= 3  # the box under the drag did not move

    # The draft itself is moved by a finger, and the form follows.
    finger.drag((at(100, 95), at(120, 95)))
    assert abs(int(page.input_value("form.filled [name=x]")) - 80) <= 3

    # With a mouse: the toggle, then a drag over the annotation box draws too.
    toggle.click()
    page.mouse.move(*at(150, 80))
    page.mouse.down()
    page.mouse.move(*at(190, 120), steps=4)
    page.mouse.up()
    assert abs(int(page.input_value("form.filled [name=x]")) - 150) <= 3
    annotation.refresh_from_db()
    assert abs(annotation.x - 40) <= 3
    page.screenshot(path=str(ARTIFACTS / "touch-boxes.png"))
    context.close()


def stage_transform(page: Any, view: str) -> tuple[float, float, float]:
    """(translate x, translate y, scale) of a comparison view's photo."""
    value = page.eval_on_selector(f"#{view} .stage", "e => e.style.transform")
    numbers = [
        float(n)
        for n in value.replace("translate(", "")
        .replace("px", "")
        .replace(") scale(", ",")
        .rstrip(")")
        .split(",")
    ]
    return numbers[0], numbers[1], numbers[2]


def test_the_comparison_pinches_and_pans_by_touch(live_server, browser, world: World) -> None:
    query = add_photo(world, 0, seed=9501, day=40)
    job = matching_services.match_job_start(
        actor=world.users["curator"], annotation=query, filters={"same_viewpoint": False}
    )
    pipeline.run(job.pk)
    context = touch_context(browser)
    page = context.new_page()
    log_in(page, live_server.url, "curator")
    page.goto(f"{live_server.url}/match-jobs/{job.pk}/")
    page.wait_for_selector("#compare[data-ready] #pair-count:not(:empty)")
    view = page.locator("#view-query")
    view.scroll_into_view_if_needed()
    finger = Finger(context, page)
    box = view.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x0, y0, s0 = stage_transform(page, "view-query")

    # Two fingers spread from 60 to 180 px apart about the middle: three times the zoom.
    finger.drag(((cx - 30, cy), (cx - 90, cy)), ((cx + 30, cy), (cx + 90, cy)))
    _, _, s1 = stage_transform(page, "view-query")
    assert 2.5 < s1 / s0 < 3.5, (s0, s1)
    # One finger pans both photos by its movement, at the same zoom.
    xa, ya, _ = stage_transform(page, "view-query")
    xc, yc, sc = stage_transform(page, "view-candidate")
    finger.drag(((cx, cy), (cx - 50, cy + 30)))
    xb, yb, s2 = stage_transform(page, "view-query")
    assert s2 == pytest.approx(s1, rel=1e-3)
    assert (xb - xa, yb - ya) == (pytest.approx(-50, abs=2), pytest.approx(30, abs=2))
    xd, yd, sd = stage_transform(page, "view-candidate")
    assert (xd - xc, yd - yc, sd) == (
        pytest.approx(-50, abs=2),
        pytest.approx(30, abs=2),
        pytest.approx(sc, rel=1e-3),
    )
    # The page did not scroll under the fingers.
    assert view.bounding_box()["y"] == pytest.approx(box["y"], abs=1)

    # Fit (the button) goes back; the wheel and a mouse drag still zoom and pan.
    page.get_by_role("button", name="Fit").click()
    assert stage_transform(page, "view-query") == (
        pytest.approx(x0, abs=0.5),
        pytest.approx(y0, abs=0.5),
        pytest.approx(s0, rel=1e-3),
    )
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -100)
    page.wait_for_timeout(50)
    assert stage_transform(page, "view-query")[2] == pytest.approx(s0 * 1.2, rel=1e-3)
    xe, ye, _ = stage_transform(page, "view-query")
    page.mouse.down()
    page.mouse.move(cx + 40, cy + 10, steps=4)
    page.mouse.up()
    xf, yf, _ = stage_transform(page, "view-query")
    assert (xf - xe, yf - ye) == (pytest.approx(40, abs=2), pytest.approx(10, abs=2))
    page.screenshot(path=str(ARTIFACTS / "touch-compare.png"))
    context.close()
