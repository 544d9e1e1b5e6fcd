"""The review queue hands each pending annotation to one curator at a time, most confident first."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from identification.curation import decisions, review
from identification.matching import pipeline
from identification.matching import services as matching_services
from identification.models import MatchJob, ReviewClaim
from resight.models import Role
from tests.conftest import Catalogue, add_photo, make_user


def queue_of(catalogue: Catalogue, n: int) -> list[MatchJob]:
    made = []
    for i in range(n):
        query = add_photo(catalogue.world, i % 4, seed=3000 + i, day=200 + i)
        job = matching_services.match_job_start(
            actor=catalogue.world.users["curator"], annotation=query, filters={"same_viewpoint": False}
        )
        pipeline.run(job.pk)
        made.append(MatchJob.objects.get(pk=job.pk))
    return made


def test_curators_get_different_items_most_confident_first(catalogue: Catalogue) -> None:
    made = queue_of(catalogue, 3)
    first, second = (
        catalogue.world.users["curator"],
        make_user("curator2", catalogue.project.organization, Role.CURATOR),
    )
    a = review.claim_next(first)
    b = review.claim_next(second)
    assert a is not None and b is not None and a.annotation_id != b.annotation_id
    ordered = sorted(made, key=lambda j: (-(j.top_probability or 0), j.annotation_id))
    assert a.annotation_id == ordered[0].annotation_id  # the most confident first
    again = review.claim_next(first)
    assert again is not None and again.annotation_id == a.annotation_id  # one's own claim stays one's own
    decisions.decide(actor=first, job=a, kind="confirm", candidate_rank=1)
    c = review.claim_next(first)
    assert c is not None and c.annotation_id not in {a.annotation_id, b.annotation_id}
    decisions.decide(actor=first, job=c, kind="skip")
    assert review.claim_next(first) is None  # skipped by them, the rest is in the other curator's hands
    assert review.claim_next(make_user("viewer2", catalogue.project.organization, Role.VIEWER)) is None


def test_the_queue_page_redirects_to_the_claimed_job_and_deciding_moves_on(catalogue: Catalogue) -> None:
    from django.test import Client

    queue_of(catalogue, 2)
    page = Client()
    page.force_login(catalogue.world.users["curator"])
    first = page.get("/review/")
    assert (
        first.status_code == 302 and "/match-jobs/" in first["Location"] and "queue=all" in first["Location"]
    )
    job_id = int(first["Location"].split("/match-jobs/")[1].split("/")[0])
    assert 'name="queue" value="all"' in page.get(first["Location"]).content.decode()
    after = page.post(
        f"/match-jobs/{job_id}/decide/", {"kind": "confirm", "candidate_rank": 1, "queue": "all"}
    )
    assert after.status_code == 302 and after["Location"].startswith("/review/")
    second = page.get(after["Location"])
    assert second.status_code == 302 and f"/match-jobs/{job_id}/" not in second["Location"]
    decisions.decide(
        actor=catalogue.world.users["curator"],
        job=MatchJob.objects.get(pk=int(second["Location"].split("/match-jobs/")[1].split("/")[0])),
        kind="unidentifiable",
    )
    assert "Nothing waits for review" in page.get("/review/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_the_same_item(catalogue: Catalogue) -> None:
    queue_of(catalogue, 4)
    curators = [catalogue.world.users["curator"]] + [
        make_user(f"parallel{i}", catalogue.project.organization, Role.CURATOR) for i in range(3)
    ]
    rounds = 5  # each round, four curators ask at the same instant; earlier claims are released first
    barrier = threading.Barrier(len(curators))
    got: dict[str, int | None] = {}

    def work(user) -> None:
        try:
            barrier.wait()
            job = review.claim_next(user)
            got[user.username] = job.annotation_id if job else None
        finally:
            connection.close()

    for _ in range(rounds):
        ReviewClaim.objects.all().delete()
        got.clear()
        threads = [threading.Thread(target=work, args=(u,)) for u in curators]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        claimed = [a for a in got.values() if a is not None]
        assert len(claimed) == len(set(claimed)) == 4, got
