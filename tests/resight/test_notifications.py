"""Notifications: the requester hears that a job finished; the species' curators hear that a confident
match of an unidentified animal awaits review; the top bar shows the unread count."""

from __future__ import annotations

from django.test import Client

from identification.matching import pipeline, spaces
from identification.models import JobState, MatchCandidate, MatchJob
from resight.models import Notification
from resight.permissions import Action, users_granted
from tests.conftest import Catalogue, World, add_photo


def test_users_granted_is_the_reverse_of_the_policy(world: World) -> None:
    curators = {u.username for u in users_granted(world.project.pk, Action.CURATE, world.leopard.pk)}
    assert curators == {"admin", "curator", "share_curate_leopard"}  # not the expired agreement
    zebra = {u.username for u in users_granted(world.project.pk, Action.CURATE, world.zebra.pk)}
    assert zebra == {"admin", "curator"}
    viewers = {u.username for u in users_granted(world.project.pk, Action.VIEW)}
    assert viewers == {"admin", "curator", "contributor", "viewer", "share_view", "share_curate_leopard"}


def _finished_job(catalogue: Catalogue, band: str, seed: int = 4242) -> MatchJob:
    world = catalogue.world
    query = add_photo(world, 0, seed=seed, day=90, actor="contributor")
    job = MatchJob.objects.create(
        annotation=query,
        requested_by=world.users["contributor"],
        space=spaces.active_space(),
        state=JobState.DONE,
        project_ids=[world.project.pk],
    )
    best = catalogue.individuals[0].annotations.first()
    assert best is not None
    MatchCandidate.objects.create(
        job=job,
        rank=1,
        individual=catalogue.individuals[0],
        annotation=best,
        global_score=0.97,
        probability=0.9,
        band=band,
        model_key=job.space.key,
    )
    return job


def test_a_confident_match_is_announced_to_curators_and_the_finish_to_the_requester(
    catalogue: Catalogue,
) -> None:
    Notification.objects.all().delete()  # the catalogue's own photos started jobs of their own
    job = _finished_job(catalogue, "good")
    pipeline.announce(job.pk)
    by_user = {n.recipient.username: n for n in Notification.objects.select_related("recipient")}
    assert by_user["contributor"].kind == "job_finished" and "CAT-0" in by_user["contributor"].text
    # Which photo it was, in words: species, day, project (not "Match job 14").
    assert (
        by_user["contributor"].text.startswith("Leopard of 20")
        and "(Big Cats)" in by_user["contributor"].text
    )
    waiting = {u for u, n in by_user.items() if n.kind == "review_waiting"}
    assert waiting == {"admin", "curator", "share_curate_leopard"}
    assert "CAT-0" not in by_user["share_curate_leopard"].text  # no individual named to others
    assert "viewer" not in by_user

    Notification.objects.all().delete()
    pipeline.announce(_finished_job(catalogue, "uncertain", seed=4243).pk)
    assert set(Notification.objects.values_list("kind", flat=True)) == {"job_finished"}


def test_the_top_bar_counts_unread_and_opening_one_marks_it_read(catalogue: Catalogue) -> None:
    Notification.objects.all().delete()
    pipeline.announce(_finished_job(catalogue, "excellent").pk)
    client = Client()
    client.force_login(catalogue.world.users["curator"])
    badge = client.get("/notifications/badge/").content.decode()
    # The count is spoken by a visually hidden text (axe: aria-label is not allowed on a bare span).
    assert '<span class="visually-hidden">1 unread</span>' in badge
    note = Notification.objects.get(recipient=catalogue.world.users["curator"])
    response = client.post("/notifications/read/", {"id": note.pk})
    assert response.status_code == 302 and response["Location"].startswith("/review/")
    assert "unread" not in client.get("/notifications/badge/").content.decode()
    assert "awaits review" in client.get("/notifications/").content.decode()
