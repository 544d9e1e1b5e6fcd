"""Verdicts in Debian's Chromium, against a real Celery worker: New sighting asks for the animal's box (one
drag, saved and matched as it is drawn) and a whole-photo box says it is loose; "new individual" on one photo
re-ranks the next photo of that animal with it first; "same animal as photo N"; the search explained, with
a one-click search without a filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import services as catalog_services
from catalog import synthetic
from catalog.models import Annotation, Sighting
from identification.matching import pipeline
from identification.matching import services as matching_services
from identification.models import MatchJob
from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORD, Catalogue, add_photo
from tests.worker import Worker, wait_for

pytestmark = pytest.mark.browser


def login(page, base: str, username: str = "curator") -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit] >> text=Log in")
    page.wait_for_url(f"{base}/")


def done_job(annotation: Annotation, user, **filters) -> MatchJob:
    job = matching_services.match_job_start(actor=user, annotation=annotation, filters=filters or None)
    pipeline.run(job.pk)
    job.refresh_from_db()
    return job


def test_new_sighting_asks_for_one_drag_and_a_whole_photo_box_is_loose(
    live_server, page, catalogue: Catalogue, worker: Worker, tmp_path: Path
) -> None:
    world = catalogue.world
    worker.start()  # the interactive queue: the match job of the drawn box
    shot = synthetic.render(synthetic.make_pattern(501), seed=7101, size=(800, 600))
    photo = tmp_path / "trap.jpg"
    photo.write_bytes(shot.jpeg)
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/sightings/new/?project={world.project.pk}")
    page.select_option("#id_project", str(world.project.pk))
    page.fill("#id_observed_at", "2026-05-01T06:30:00")
    page.select_option("#id_species", str(world.leopard.pk))
    page.select_option("#id_viewpoint", shot.facing)
    page.set_input_files("#id_photos", str(photo))
    page.click("text=Save sighting")
    page.wait_for_url("**/sightings/*/**")
    sighting = Sighting.objects.filter(project=world.project).latest("created_at")
    assert not sighting.annotations.exists()  # no whole-photo box was matched behind the user's back
    assert "Mark the animal" in page.inner_text("#annotate")

    # One drag around the animal: the box is saved and matched at once.
    frame = page.locator(".photo .frame").first
    page.wait_for_function("() => [...document.querySelectorAll('.photo img')].every(i => i.complete)")
    bounds = frame.bounding_box()
    scale = bounds["width"] / 800
    x, y, w, h = shot.box
    page.mouse.move(bounds["x"] + x * scale, bounds["y"] + y * scale)
    page.mouse.down()
    page.mouse.move(bounds["x"] + (x + w) * scale, bounds["y"] + (y + h) * scale, steps=10)
    page.mouse.up()
    annotation = wait_for(lambda: sighting.annotations.first(), 30)
    assert annotation.species == world.leopard and not annotation.loose_box
    assert all(abs(got - want) <= 8 for got, want in zip(annotation.box, shot.box, strict=True)), (
        annotation.box
    )
    job = wait_for(lambda: MatchJob.objects.filter(annotation=annotation, state="done").first(), 180)
    assert job.candidates.get(rank=1).individual == catalogue.individuals[1] and not job.loose_box
    page.goto(f"{base}/match-jobs/{job.pk}/")
    assert "Loose box" not in page.inner_text("#job")

    # The same animal annotated as the whole photo (an uncropped photo): its verdict says the box is loose.
    loose = add_photo(world, 1, seed=7102, day=30)
    whole = (0, 0, loose.media_asset.width, loose.media_asset.height)
    catalog_services.annotation_update(actor=world.users["curator"], annotation=loose, changes={"box": whole})
    loose_job = done_job(loose, world.users["curator"])
    page.goto(f"{base}/match-jobs/{loose_job.pk}/")
    verdict = page.inner_text(".verdict.loose")
    assert "Loose box" in verdict and "Probably a new individual" not in page.inner_text("#job")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "loose-box-verdict.png"), full_page=True)


def test_new_individual_reranks_the_next_photo_and_same_animal_as_photo_n(
    live_server, page, catalogue: Catalogue, worker: Worker
) -> None:
    world = catalogue.world
    curator = world.users["curator"]
    worker.start()  # the interactive queue: the refresh after the decision
    first, second = (add_photo(world, 7, seed=7200 + i, day=40 + i) for i in range(2))
    jobs = [done_job(a, curator, same_viewpoint=False) for a in (first, second)]
    second_jobs = MatchJob.objects.filter(annotation=second).count()  # with the one its upload started
    assert not jobs[1].candidates.filter(individual__annotations=first).exists()  # nobody knows it yet
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/match-jobs/{jobs[0].pk}/")
    page.click("button:has-text('New individual')")
    page.wait_for_url(f"**/match-jobs/{jobs[0].pk}/")
    newcomer = Annotation.objects.get(pk=first.pk).individual
    assert newcomer is not None

    # The second photo's list is re-ranked on the worker, with the newcomer first; the page waits for it.
    page.goto(f"{base}/match-jobs/{jobs[1].pk}/")
    page.wait_for_function(
        "code => document.querySelector('table.candidates tbody tr td:nth-child(2)')"
        "?.innerText.includes(code)",
        arg=newcomer.code,
        timeout=120_000,
    )
    assert page.locator(".verdict.stale").count() == 0
    page.screenshot(path=str(ARTIFACTS / "reranked-list.png"), full_page=True)
    assert MatchJob.objects.filter(annotation=second).count() == second_jobs  # re-ranked, no new job

    # A third photo of the same animal in the second photo's sighting: "same animal as photo N".
    third = add_photo(world, 7, seed=7210, day=41)
    third.media_asset.sighting = second.sighting
    third.media_asset.save()
    Annotation.objects.filter(pk=third.pk).update(sighting=second.sighting)
    page.goto(f"{base}/match-jobs/{jobs[1].pk}/")
    page.click("button:has-text('Confirm') >> nth=0")
    page.wait_for_url(f"**/match-jobs/{jobs[1].pk}/")
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.individual == newcomer and third.individual == newcomer  # one sighting, one animal


def test_the_search_is_explained_and_widened_in_one_click(
    live_server, page, catalogue: Catalogue, worker: Worker
) -> None:
    world = catalogue.world
    worker.start()  # the interactive queue: the widened job
    query = add_photo(world, 2, seed=7300, day=50)
    # The catalogue's photos of CAT-2 were taken 30 to 50 days before: a 1-day window leaves them out.
    narrow = done_job(query, world.users["curator"], days=1, radius_km=5, same_viewpoint=False)
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/match-jobs/{narrow.pk}/")
    assert "No candidate within these filters" in page.inner_text(".verdict.filtered")
    filters = page.inner_text("details.searched")
    assert "within 1 days of this sighting" in filters and "within 5 km" in filters
    page.screenshot(path=str(ARTIFACTS / "search-explained.png"), full_page=True)
    page.click("details.searched tr:has-text('days') button:has-text('Search without this filter')")
    page.wait_for_url(lambda url: f"/match-jobs/{narrow.pk}/" not in url)
    page.wait_for_selector("table.candidates tbody tr td:has-text('CAT-2')", timeout=180_000)
    widened = MatchJob.objects.filter(annotation=query).latest("created_at")
    assert "days" not in widened.filters and widened.filters["radius_km"] == 5


def test_the_sighting_page_follows_its_match_job_until_it_is_done(
    live_server, page, catalogue: Catalogue, worker: Worker
) -> None:
    """A job queued while no worker runs says so on its sighting's page; once a worker takes it, the page
    shows it done by itself (no reload)."""
    world = catalogue.world
    annotation = add_photo(world, 2, seed=7300, day=45)
    job = matching_services.match_job_start(actor=world.users["curator"], annotation=annotation)
    base = live_server.url
    login(page, base)
    page.goto(f"{base}/sightings/{annotation.sighting_id}/")
    cell = page.locator(f"#matching-{annotation.pk} a")
    assert cell.inner_text().startswith("Queued")
    worker.start()
    page.wait_for_function(
        "pk => document.querySelector(`#matching-${pk} a`)?.innerText.trim() === 'Done'",
        arg=annotation.pk,
        timeout=120_000,
    )
    job.refresh_from_db()
    assert job.state == "done"
    assert cell.get_attribute("href") == f"/match-jobs/{job.pk}/"
