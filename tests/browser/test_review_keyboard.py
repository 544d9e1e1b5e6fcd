"""A curator works the review queue with the keyboard: 1 confirms the top candidate and moves on, Z undoes."""

from __future__ import annotations

import pytest

from identification.matching import pipeline
from identification.matching import services as matching_services
from identification.models import Decision, MatchJob
from tests.conftest import PASSWORD, Catalogue, add_photo

pytestmark = pytest.mark.browser


def test_review_queue_with_the_keyboard(live_server, page, catalogue: Catalogue) -> None:
    world = catalogue.world
    queued = []
    for i, seed in enumerate((8101, 8102)):
        query = add_photo(world, i, seed=seed, day=240 + i)
        job = matching_services.match_job_start(
            actor=world.users["curator"], annotation=query, filters={"same_viewpoint": False}
        )
        pipeline.run(job.pk)
        queued.append(MatchJob.objects.get(pk=job.pk))

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "curator")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit] >> text=Log in")
    page.goto(f"{live_server.url}/review/")
    page.wait_for_selector("table.candidates")
    first_url = page.url
    first = MatchJob.objects.get(pk=int(first_url.split("/match-jobs/")[1].split("/")[0]))
    page.keyboard.press("1")
    page.wait_for_url(lambda url: url != first_url and "/match-jobs/" in url)
    decision = Decision.objects.get(annotation=first.annotation)
    assert decision.kind == "confirm" and decision.candidate_rank == 1
    first.annotation.refresh_from_db()
    assert first.annotation.individual_id == first.candidates.get(rank=1).individual_id
    assert {first.pk, int(page.url.split("/match-jobs/")[1].split("/")[0])} == {j.pk for j in queued}

    page.goto(first_url)
    page.keyboard.press("z")
    page.wait_for_selector(".messages >> text=Undone")
    first.annotation.refresh_from_db()
    assert first.annotation.individual_id is None
