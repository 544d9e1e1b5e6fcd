"""Role x action x surface: every role, an outsider, anonymous, and sharing-agreement users, against every
page, API endpoint and media URL.

The expectations below are written out by hand from the product rules, not derived from the policy code:
- not allowed to see  -> 404 (anonymous: sent to log in, or 401/403 from the API)
- may see, may not do -> 403
- may do              -> 2xx / 3xx
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from catalog.models import Individual, Sighting, UploadBatch
from tests.conftest import World, photo_bytes

USERS = [
    "admin",
    "curator",
    "contributor",
    "viewer",
    "outsider",
    "anonymous",
    "share_view",
    "share_curate_leopard",
    "share_match",
    "share_expired",
]

# What each user may do on the world's project, by hand.
# "curate" for share_curate_leopard holds for leopards only.
ALLOWED: dict[str, set[str]] = {
    "admin": {"view", "contribute", "curate", "export", "manage"},
    "curator": {"view", "contribute", "curate", "export"},
    "contributor": {"view", "contribute"},
    "viewer": {"view"},
    "outsider": set(),
    "anonymous": set(),
    "share_view": {"view"},
    "share_curate_leopard": {"view", "curate"},
    "share_match": set(),
    "share_expired": set(),
}
# Objects of the zebra (outside share_curate_leopard's species scope) are invisible to that user.
LEOPARD_ONLY = {"share_curate_leopard"}


@dataclass(frozen=True)
class Surface:
    name: str
    method: str
    url: Callable[[World], str]
    action: str
    api: bool
    data: Callable[[World], Any] | None = None
    zebra: bool = False  # the object is a zebra's (or has no leopard)
    multipart: bool = False
    refs_in_body: bool = False  # a create naming its project in the body: unknown ids are a 400


def _new_photo(w: World) -> dict[str, Any]:
    f = io.BytesIO(photo_bytes(seed=99, pattern_seed=9))
    f.name = "new.jpg"
    return {"project": w.project.pk, "sighting": w.sighting.pk, "file": f}


def _batch_url(w: World) -> str:
    if "batch" not in w.extra:
        w.extra["batch"] = UploadBatch.objects.create(project=w.project, created_by=w.users["contributor"])
    return f"/uploads/{w.extra['batch'].pk}/"  # type: ignore[attr-defined]


SURFACES = [
    # HTML pages (lists show only what may be seen: see test_lists_show_exactly_what_may_be_seen)
    Surface("page dashboard", "get", lambda w: "/", "any", False),
    Surface("page species", "get", lambda w: "/species/", "any", False),
    Surface("page individuals", "get", lambda w: "/individuals/", "any", False),
    Surface("page new sighting", "get", lambda w: "/sightings/new/", "any", False),
    Surface(
        "page add annotation",
        "post",
        lambda w: f"/sightings/{w.sighting.pk}/annotations/",
        "contribute",
        False,
        data=lambda w: {
            "media_asset": w.asset.pk,
            "species": w.leopard.pk,
            "x": 1,
            "y": 1,
            "width": 20,
            "height": 20,
            "viewpoint": "left",
        },
    ),
    Surface("page project", "get", lambda w: f"/projects/{w.project.pk}/", "view", False),
    Surface(
        "page merge preview",
        "get",
        lambda w: f"/individuals/{w.leopard_individual.pk}/merge/",
        "curate",
        False,
    ),
    Surface(
        "page zebra merge preview",
        "get",
        lambda w: f"/individuals/{w.zebra_individual.pk}/merge/",
        "curate",
        False,
        zebra=True,
    ),
    Surface(
        "page identity changes",
        "get",
        lambda w: f"/individuals/{w.leopard_individual.pk}/identity-changes/",
        "view",
        False,
    ),
    Surface("page uploads", "get", lambda w: "/uploads/", "any", False),
    Surface("page upload batch", "get", _batch_url, "contribute", False),
    Surface("page population", "get", lambda w: f"/projects/{w.project.pk}/population/", "view", False),
    Surface(
        "page population MARK export",
        "get",
        lambda w: f"/projects/{w.project.pk}/population/mark.inp?species={w.leopard.pk}",
        "export",
        False,
    ),
    Surface(
        "page Darwin Core Archive export",
        "get",
        lambda w: f"/projects/{w.project.pk}/export/dwca.zip",
        "export",
        False,
    ),
    Surface(
        "page wildlife-datasets export",
        "get",
        lambda w: f"/projects/{w.project.pk}/export/wildlife-datasets.zip",
        "export",
        False,
    ),
    Surface(
        "page COCO export", "get", lambda w: f"/projects/{w.project.pk}/export/coco.zip", "export", False
    ),
    Surface("page sharing", "get", lambda w: "/sharing/", "any", False),
    Surface("page API tokens", "get", lambda w: "/tokens/", "any", False),
    Surface("page webhooks", "get", lambda w: "/webhooks/", "any", False),
    Surface("page sighting", "get", lambda w: f"/sightings/{w.sighting.pk}/", "view", False),
    Surface(
        "page zebra sighting",
        "get",
        lambda w: f"/sightings/{w.zebra_sighting.pk}/",
        "view",
        False,
        zebra=True,
    ),
    Surface("page individual", "get", lambda w: f"/individuals/{w.leopard_individual.pk}/", "view", False),
    Surface(
        "page zebra individual",
        "get",
        lambda w: f"/individuals/{w.zebra_individual.pk}/",
        "view",
        False,
        zebra=True,
    ),
    # Media URLs
    Surface("media preview", "get", lambda w: f"/media/{w.asset.pk}/preview/", "view", False),
    Surface("media thumbnail", "get", lambda w: f"/media/{w.asset.pk}/thumbnail/", "view", False),
    # Originals of a sensitive species keep their EXIF GPS: curate rights only.
    Surface("media original (sensitive)", "get", lambda w: f"/media/{w.asset.pk}/original/", "curate", False),
    Surface(
        "media zebra original",
        "get",
        lambda w: f"/media/{w.zebra_sighting.media_assets.get().pk}/original/",
        "view",
        False,
        zebra=True,
    ),
    # API reads
    Surface("api species list", "get", lambda w: "/api/species/", "any", True),
    Surface("api sightings list", "get", lambda w: "/api/sightings/", "any", True),
    Surface("api sharing agreements list", "get", lambda w: "/api/sharing-agreements/", "any", True),
    Surface("api project", "get", lambda w: f"/api/projects/{w.project.pk}/", "view", True),
    Surface("api sighting", "get", lambda w: f"/api/sightings/{w.sighting.pk}/", "view", True),
    Surface(
        "api zebra sighting",
        "get",
        lambda w: f"/api/sightings/{w.zebra_sighting.pk}/",
        "view",
        True,
        zebra=True,
    ),
    Surface("api individual", "get", lambda w: f"/api/individuals/{w.leopard_individual.pk}/", "view", True),
    Surface(
        "api zebra individual",
        "get",
        lambda w: f"/api/individuals/{w.zebra_individual.pk}/",
        "view",
        True,
        zebra=True,
    ),
    Surface("api media asset", "get", lambda w: f"/api/media-assets/{w.asset.pk}/", "view", True),
    Surface("api annotation", "get", lambda w: f"/api/annotations/{w.annotation.pk}/", "view", True),
    # API writes
    Surface(
        "api edit sighting",
        "patch",
        lambda w: f"/api/sightings/{w.sighting.pk}/",
        "contribute",
        True,
        data=lambda w: {"notes": "edited"},
    ),
    Surface(
        "api edit annotation box",
        "patch",
        lambda w: f"/api/annotations/{w.annotation.pk}/",
        "contribute",
        True,
        data=lambda w: {"x": 5},
    ),
    Surface(
        "api edit individual",
        "patch",
        lambda w: f"/api/individuals/{w.leopard_individual.pk}/",
        "curate",
        True,
        data=lambda w: {"name": "Renamed"},
    ),
    Surface(
        "api edit zebra individual",
        "patch",
        lambda w: f"/api/individuals/{w.zebra_individual.pk}/",
        "curate",
        True,
        data=lambda w: {"name": "Renamed"},
        zebra=True,
    ),
    Surface(
        "api edit project",
        "patch",
        lambda w: f"/api/projects/{w.project.pk}/",
        "manage",
        True,
        data=lambda w: {"description": "new"},
    ),
    Surface(
        "api create sighting",
        "post",
        lambda w: "/api/sightings/",
        "contribute",
        True,
        data=lambda w: {"project": w.project.pk, "observed_at": "2026-04-01T10:00:00Z"},
        refs_in_body=True,
    ),
    Surface(
        "api create individual",
        "post",
        lambda w: "/api/individuals/",
        "curate",
        True,
        data=lambda w: {"project": w.project.pk, "species": w.leopard.pk, "code": "L9"},
        refs_in_body=True,
    ),
    Surface(
        "api upload photo",
        "post",
        lambda w: "/api/media-assets/",
        "contribute",
        True,
        data=_new_photo,
        multipart=True,
        refs_in_body=True,
    ),
    Surface(
        "api create annotation",
        "post",
        lambda w: "/api/annotations/",
        "contribute",
        True,
        data=lambda w: {
            "media_asset": w.asset.pk,
            "species": w.leopard.pk,
            "x": 1,
            "y": 1,
            "width": 30,
            "height": 30,
            "viewpoint": "right",
        },
        refs_in_body=True,
    ),
]


def expected(user: str, surface: Surface) -> str:
    allowed = ALLOWED[user]
    if surface.zebra and user in LEOPARD_ONLY:
        allowed = set()
    if user == "anonymous":
        return "login"
    if surface.action == "any":
        return "ok"
    if "view" not in allowed:
        # Objects referenced in a create body are invisible: the API answers 400 (unknown id), never 403.
        return "bad-request" if surface.refs_in_body else "not-found"
    return "ok" if surface.action in allowed else "forbidden"


def outcome(status: int, location: str = "") -> str:
    if status in (401,) or (status == 302 and "/login/" in location):
        return "login"
    if status == 403:
        return "forbidden"  # also anonymous on session-only views is handled above via redirect
    if status == 404:
        return "not-found"
    if status == 400:
        return "bad-request"
    if 200 <= status < 400:
        return "ok"
    return f"unexpected {status}"


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
@pytest.mark.parametrize("user", USERS)
def test_matrix(world: World, user: str, surface: Surface, api_client_for) -> None:
    account = world.users.get(user)
    url = surface.url(world)
    data = surface.data(world) if surface.data else None
    if surface.api:
        client = api_client_for(account)
        fmt = "multipart" if surface.multipart else "json"
        response = (
            getattr(client, surface.method)(url, data, format=fmt)
            if data is not None
            else getattr(client, surface.method)(url)
        )
    else:
        client = Client()
        if account is not None:
            client.force_login(account)
        send = getattr(client, surface.method)
        response = send(url, data) if data else send(url)
    got = outcome(response.status_code, response.get("Location", ""))
    want = expected(user, surface)
    if user == "anonymous" and surface.api:
        want_any = {"login", "forbidden"}  # DRF: 401 with token auth offered, 403 for session-only
        assert got in want_any, f"{user} {surface.name}: {response.status_code}"
        return
    assert got == want, f"{user} {surface.name}: got {response.status_code} ({got}), want {want}"


@pytest.mark.parametrize("user", USERS)
def test_lists_show_exactly_what_may_be_seen(world: World, user: str, api_client_for) -> None:
    account = world.users.get(user)
    if account is None:
        return
    allowed = ALLOWED[user]
    client = api_client_for(account)
    sightings = {row["id"] for row in client.get("/api/sightings/").json()["results"]}
    individuals = {row["id"] for row in client.get("/api/individuals/").json()["results"]}
    projects = {row["id"] for row in client.get("/api/projects/").json()["results"]}
    if "view" not in allowed:
        assert sightings == individuals == set()
        assert world.project.pk not in projects
    elif user in LEOPARD_ONLY:
        assert sightings == {world.sighting.pk}
        assert individuals == {world.leopard_individual.pk}
    else:
        assert sightings == {world.sighting.pk, world.zebra_sighting.pk}
        assert individuals == {world.leopard_individual.pk, world.zebra_individual.pk}
    assert world.other_project.pk not in projects or user == "outsider"

    page = Client()
    page.force_login(account)
    html = page.get("/individuals/").content.decode()
    assert ("L1" in html) == ("view" in allowed)
    dashboard = page.get("/").content.decode()
    assert ("Big Cats" in dashboard) == ("view" in allowed)


@pytest.mark.parametrize("user", ["viewer", "curator", "share_view", "share_curate_leopard", "contributor"])
def test_sensitive_locations_are_blurred_without_curate_rights(
    world: World, user: str, api_client_for
) -> None:
    account = world.users.get(user)
    precise = "curate" in ALLOWED[user]
    row = api_client_for(account).get(f"/api/sightings/{world.sighting.pk}/").json()
    assert row["location_blurred"] is (not precise)
    if precise:
        assert (row["latitude"], row["longitude"]) == (-1.23456, 35.12345)
        assert row["location_name"] == "Den rock"
    else:
        assert (row["latitude"], row["longitude"]) == (-1.2, 35.1)
        assert row["location_uncertainty_m"] >= 11_000
        assert row["location_name"] == ""
    page = Client()
    page.force_login(account)  # type: ignore[arg-type]
    html = page.get(f"/sightings/{world.sighting.pk}/").content.decode()
    assert ("-1.23456" in html) is precise
    assert ("Den rock" in html) is precise
    # A zebra sighting is not sensitive: everyone who sees it sees it exactly.
    if user not in LEOPARD_ONLY:
        zebra = api_client_for(account).get(f"/api/sightings/{world.zebra_sighting.pk}/").json()
        assert (zebra["latitude"], zebra["location_blurred"]) == (-1.5, False)


def test_writes_that_were_refused_changed_nothing(world: World, api_client_for) -> None:
    viewer = api_client_for(world.users["viewer"])
    assert (
        viewer.patch(f"/api/sightings/{world.sighting.pk}/", {"notes": "x"}, format="json").status_code == 403
    )
    assert (
        viewer.post(
            "/api/individuals/",
            {"project": world.project.pk, "species": world.leopard.pk, "code": "L7"},
            format="json",
        ).status_code
        == 403
    )
    assert Sighting.objects.get(pk=world.sighting.pk).notes == ""
    assert not Individual.objects.filter(code="L7").exists()


def test_new_sighting_form_refuses_projects_one_cannot_contribute_to(world: World) -> None:
    for user, allowed in (("viewer", False), ("contributor", True)):
        client = Client()
        client.force_login(world.users[user])
        f = io.BytesIO(photo_bytes(seed=50 + allowed))
        f.name = "p.jpg"
        response = client.post(
            "/sightings/new/",
            {
                "project": world.project.pk,
                "time_zone": "UTC",
                "observed_at": "2026-05-01T10:00",
                "photos": [f],
            },
        )
        assert (response.status_code == 302) is allowed, response.status_code
