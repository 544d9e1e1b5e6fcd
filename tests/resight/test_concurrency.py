"""Against a real threaded HTTP server (pytest-django's live server) and real concurrent database sessions:
a held row lock answers 409 instead of holding server threads, racing uploads of one photo give one 201
and clear 400s, and two curators deciding at once never both apply their decision."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from knox.models import AuthToken

from catalog.models import Individual, MediaAsset, Sighting
from identification.curation import decisions
from identification.matching import services as matching_services
from identification.models import Decision
from tests.conftest import World, photo_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def token(world: World, user: str) -> dict[str, str]:
    _, key = AuthToken.objects.create(user=world.users[user])
    return {"Authorization": f"Token {key}"}


@contextmanager
def row_locked(model: type[models.Model], pk: int) -> Iterator[None]:
    """Hold a row lock from another database session (another request or a worker) until the block ends."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                model._default_manager.select_for_update().filter(pk=pk).order_by().exists()
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


def test_a_held_row_lock_is_a_409_and_other_pages_still_answer(world: World, live_server, settings) -> None:
    settings.RESIGHT_DB_LOCK_TIMEOUT_MS = 500
    headers = token(world, "curator")
    url = f"{live_server.url}/api/sightings/{world.sighting.pk}/"
    with row_locked(Sighting, world.sighting.pk):
        # Many writers of the locked row at once, more than the server has threads...
        with ThreadPoolExecutor(12) as pool:
            answers = list(
                pool.map(
                    lambda _: requests.patch(url, json={"notes": "x"}, headers=headers, timeout=30), range(12)
                )
            )
        # ...each told to try again, and a page about something else answers meanwhile.
        other = requests.get(f"{live_server.url}/api/individuals/", headers=headers, timeout=30)
    assert {a.status_code for a in answers} == {409}
    assert answers[0].headers["Retry-After"] and "Try again" in answers[0].json()["detail"]
    assert other.status_code == 200
    after = requests.patch(url, json={"notes": "x"}, headers=headers, timeout=30)
    assert after.status_code == 200  # the lock is gone, and so is the limit's effect


def test_a_page_behind_a_lock_says_busy_in_html(world: World, live_server, settings) -> None:
    settings.RESIGHT_DB_LOCK_TIMEOUT_MS = 500
    second = Individual.objects.create(project=world.project, species=world.leopard, code="L2")
    browser = requests.Session()
    login = browser.get(f"{live_server.url}/login/")
    csrf = browser.cookies["csrftoken"]
    browser.post(
        f"{live_server.url}/login/",
        {"username": "curator", "password": "test-password-123", "csrfmiddlewaretoken": csrf},
        headers={"Referer": login.url},
    )
    with row_locked(Individual, world.leopard_individual.pk):
        page = browser.post(
            f"{live_server.url}/individuals/{second.pk}/merge/",
            {"target": world.leopard_individual.pk, "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            headers={"Referer": f"{live_server.url}/individuals/{second.pk}/merge/"},
        )
    assert page.status_code == 409 and "Someone else is changing this" in page.text
    second.refresh_from_db()
    assert second.status == "active"


def test_ten_parallel_uploads_of_one_photo_give_one_photo_and_nine_clear_refusals(
    world: World, live_server, media_root
) -> None:
    headers = token(world, "curator")
    data = photo_bytes(seed=777, pattern_seed=77)

    def send(_: int) -> requests.Response:
        return requests.post(
            f"{live_server.url}/api/media-assets/",
            data={"project": world.project.pk, "sighting": world.sighting.pk},
            files={"file": ("same.jpg", data, "image/jpeg")},
            headers=headers,
            timeout=60,
        )

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(10)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [400] * 9, statuses
    assert all("Already in the project" in str(a.json()) for a in answers if a.status_code == 400)
    assert MediaAsset.objects.filter(original_filename="same.jpg").count() == 1
    originals = list((media_root / "projects" / str(world.project.pk) / "originals").rglob("*.jpg"))
    assert len(originals) == MediaAsset.objects.count()  # no original left behind by a loser


def test_two_curators_deciding_new_individual_at_once_make_one_individual(world: World) -> None:
    annotation = world.zebra_sighting.annotations.get()
    annotation.individual = None
    annotation.save()
    job = matching_services.match_job_start(actor=world.users["curator"], annotation=annotation)
    individuals_before = Individual.objects.count()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(user: str) -> None:
        try:
            start.wait()
            decisions.decide(actor=world.users[user], job=job, kind="new_individual")
            outcomes.append("decided")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(u,)) for u in ("curator", "admin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[1] == "decided" and "Already decided" in sorted(outcomes)[0], outcomes
    assert Individual.objects.count() == individuals_before + 1  # no empty individual left behind
    annotation.refresh_from_db()
    assert annotation.individual is not None and annotation.individual.annotations.count() == 1
    assert Decision.objects.filter(annotation=annotation).count() == 1
