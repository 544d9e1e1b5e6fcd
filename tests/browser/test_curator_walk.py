"""The curator's day in Debian's Chromium, against a real Celery worker:

bulk upload with one bad CSV row (reported, nothing written) -> fix it and send again -> progress to done ->
draw the animal's box -> review queue -> confirm the match with the keyboard -> undo -> confirm again -> the
individual's page shows the new sighting on its timeline and its map.
And: two curators working the same queue at once never get the same item.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from catalog import synthetic
from catalog.models import Annotation, MediaAsset, Sighting, UploadItem
from identification.models import Decision, MatchJob
from resight.models import Role
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, Catalogue, make_user
from tests.worker import Worker, wait_for

pytestmark = pytest.mark.browser

HEADER = "file,time,latitude,longitude,location_name,species,viewpoint,body_part\n"


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit] >> text=Log in")
    page.wait_for_url(f"{base}/")


def job_id(url: str) -> int:
    return int(url.split("/match-jobs/")[1].split("/")[0])


def test_bulk_upload_box_review_undo_and_the_individual_page(
    live_server, page, catalogue: Catalogue, worker: Worker, tmp_path: Path
) -> None:
    world, target = catalogue.world, catalogue.individuals[1]
    worker.queues = "interactive,bulk"
    worker.start()
    shots = {
        "cat1": synthetic.render(synthetic.make_pattern(501), seed=7001, size=(800, 600)),
        "cat2": synthetic.render(synthetic.make_pattern(502), seed=7002, size=(800, 600)),
    }
    archive = tmp_path / "trap.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, shot in shots.items():
            z.writestr(f"images/{name}.jpg", shot.jpeg)
    rows = {
        name: f"images/{name}.jpg,2026-07-0{i + 1} 06:30,-1.{40 + i},35.{20 + i},Camera {i},Leopard,"
        f"{shot.facing},flank\n"
        for i, (name, shot) in enumerate(shots.items())
    }
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + rows["cat1"] + rows["cat2"].replace("2026-07-02 06:30", "2026-13-45 99:00"))
    good = tmp_path / "good.csv"
    good.write_text(HEADER + rows["cat1"] + rows["cat2"])
    before = (MediaAsset.objects.count(), Sighting.objects.count(), Annotation.objects.count())

    base = live_server.url
    login(page, base, "curator")
    page.click("nav >> text=Bulk upload")
    page.select_option("#id_project", str(world.project.pk))
    page.set_input_files("#id_csv_file", str(bad))
    page.set_input_files("#id_zip_file", str(archive))
    page.click("text=Create upload")
    page.wait_for_selector("table.problems", timeout=120_000)  # the worker's dry run, then a page refresh
    problems = page.inner_text("table.problems")
    assert "images/cat2.jpg" in problems and "time is not a date" in problems and "3" in problems
    assert "images/cat1.jpg" not in problems
    assert (MediaAsset.objects.count(), Sighting.objects.count(), Annotation.objects.count()) == before

    page.set_input_files("input[name=csv_file]", str(good))
    page.click("text=Send and check")
    page.wait_for_selector("#import-button", timeout=120_000)
    page.click("#import-button")
    page.wait_for_selector("[data-state=done]", timeout=180_000)
    assert "2 / 2 photos imported" in page.inner_text("#upload-status")

    # Draw the animal's box on the imported photo of CAT-1 (it came in as a whole-photo annotation):
    # resize the box by its corner, then move it into place. Each edit is saved through the API.
    item = UploadItem.objects.get(name="images/cat1.jpg")
    assert item.annotation_id is not None and item.sighting_id is not None
    annotation = Annotation.objects.get(pk=item.annotation_id)
    x, y, w, h = shots["cat1"].box
    page.goto(f"{base}/sightings/{item.sighting_id}/")
    frame = page.locator(f".frame[data-asset='{annotation.media_asset_id}']")
    page.wait_for_function("() => [...document.querySelectorAll('.photo img')].every(i => i.complete)")
    bounds = frame.bounding_box()
    scale = bounds["width"] / annotation.media_asset.width
    handle = frame.locator(f".box[data-annotation='{annotation.pk}'] .handle")
    hb = handle.bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(bounds["x"] + w * scale, bounds["y"] + h * scale, steps=8)
    page.mouse.up()
    wait_for(lambda: Annotation.objects.get(pk=annotation.pk).width < annotation.media_asset.width, 30)
    page.mouse.move(bounds["x"] + 10, bounds["y"] + 10)
    page.mouse.down()
    page.mouse.move(bounds["x"] + 10 + x * scale, bounds["y"] + 10 + y * scale, steps=8)
    page.mouse.up()
    moved = wait_for(lambda: (a := Annotation.objects.get(pk=annotation.pk)).x > 0 and a, 30)
    # Within a few screen pixels (the handle is grabbed at its centre).
    assert all(abs(got - want) <= 10 for got, want in zip(moved.box, (x, y, w, h), strict=True)), moved.box
    # The redrawn box is matched again; its job finishes on the worker.
    wait_for(
        lambda: MatchJob.objects.filter(
            annotation=annotation, created_at__gt=moved.updated_at, state="done"
        ).exists(),
        180,
    )

    # The review queue: skip what is not CAT-1's photo, confirm it with key 1.
    page.goto(f"{base}/review/?project={world.project.pk}")
    for _ in range(4):
        page.wait_for_selector("table.candidates", timeout=60_000)
        if MatchJob.objects.get(pk=job_id(page.url)).annotation_id == annotation.pk:
            break
        current = page.url
        page.keyboard.press("s")
        page.wait_for_url(lambda url, current=current: url != current)
    job = MatchJob.objects.get(pk=job_id(page.url))
    assert job.annotation_id == annotation.pk
    assert job.candidates.get(rank=1).individual == target
    page.wait_for_selector("#compare svg.pairs line")  # the keypoint evidence is drawn
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)
    review_url = page.url
    page.keyboard.press("1")
    page.wait_for_url(lambda url: url != review_url)
    assert Annotation.objects.get(pk=annotation.pk).individual == target

    page.goto(review_url)
    page.keyboard.press("z")
    page.wait_for_selector(".messages >> text=Undone")
    assert Annotation.objects.get(pk=annotation.pk).individual_id is None
    page.keyboard.press("1")
    page.wait_for_url(lambda url: "/match-jobs/" not in url or job_id(url) != job.pk)
    assert Annotation.objects.get(pk=annotation.pk).individual == target
    kinds = list(Decision.objects.filter(annotation=annotation).order_by("id").values_list("kind", flat=True))
    assert kinds == ["confirm", "undo", "confirm"]

    page.goto(f"{base}/individuals/{target.pk}/")
    assert page.locator(f".timeline a[href='/sightings/{item.sighting_id}/']").count() == 1
    page.wait_for_selector("#map[data-points]")
    points = json.loads(page.inner_text("#map-data"))["points"]
    assert f"/sightings/{item.sighting_id}/" in {p["url"] for p in points}
    assert int(page.get_attribute("#map", "data-points") or 0) == len(points)
    page.screenshot(path=str(ARTIFACTS / "individual-page.png"), full_page=True)
    page.goto(f"{base}/projects/{world.project.pk}/population/")
    page.screenshot(path=str(ARTIFACTS / "population-page.png"), full_page=True)


def test_two_curators_never_get_the_same_queue_item(live_server, browser, catalogue: Catalogue) -> None:
    from identification.matching import pipeline
    from identification.matching import services as matching_services
    from tests.conftest import add_photo

    world = catalogue.world
    make_user("second", world.project.organization, Role.CURATOR)
    for i, seed in enumerate((8301, 8302, 8303)):
        query = add_photo(world, i, seed=seed, day=260 + i)
        pipeline.run(matching_services.match_job_start(actor=world.users["curator"], annotation=query).pk)
    pages = []
    for username in ("curator", "second"):
        context = browser.new_context()
        page = context.new_page()
        login(page, live_server.url, username)
        pages.append(page)
    seen: list[set[int]] = [set(), set()]
    for _ in range(2):
        for n, page in enumerate(pages):
            page.goto(f"{live_server.url}/review/?project={world.project.pk}")
            if "/match-jobs/" in page.url:
                seen[n].add(MatchJob.objects.get(pk=job_id(page.url)).annotation_id)
    assert seen[0] and seen[1]
    assert not seen[0] & seen[1]  # each holds their claim; the other is handed something else
    for page in pages:
        page.context.close()
