"""Personal API tokens made in the browser: a name, scopes (read, write, match) and a lifetime; the secret is
shown once; the token acts only within its scopes, stops at its expiry and when revoked; each step audited."""

from __future__ import annotations

import datetime as dt
import re

from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import CONSTANTS
from rest_framework.test import APIClient

from resight.models import AuditEvent, PersonalToken
from tests.conftest import World


def browser(world: World, user: str = "curator") -> Client:
    client = Client()
    client.force_login(world.users[user])
    return client


def make(world: World, scopes: list[str], days: int = 30, user: str = "curator") -> str:
    page = browser(world, user).post("/tokens/", {"name": "sync script", "scopes": scopes, "days": days})
    assert page.status_code == 200, page.content.decode()[:500]
    found = re.search(r'<output id="new-token" class="secret">([0-9a-f]+)</output>', page.content.decode())
    assert found, "the new secret is shown once"
    return found.group(1)


def api(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def test_a_token_made_in_the_browser_acts_only_within_its_scopes(world: World) -> None:
    secret = make(world, ["read"])
    listing = browser(world).get("/tokens/").content.decode()
    assert (
        "sync script" in listing and secret not in listing and secret[: CONSTANTS.TOKEN_KEY_LENGTH] in listing
    )
    reader = api(secret)
    assert reader.get("/api/sightings/").status_code == 200
    refused = reader.patch(f"/api/sightings/{world.sighting.pk}/", {"notes": "x"}, format="json")
    assert refused.status_code == 403 and "lacks the write scope" in refused.json()["detail"]
    job = reader.post("/api/match-jobs/", {"annotation": world.annotation.pk}, format="json")
    assert job.status_code == 403 and "match scope" in job.json()["detail"]

    matcher = api(make(world, ["read", "match"]))
    assert (
        matcher.post("/api/match-jobs/", {"annotation": world.annotation.pk}, format="json").status_code
        == 201
    )
    writer = api(make(world, ["write"]))
    assert writer.get("/api/sightings/").status_code == 403
    assert (
        writer.patch(f"/api/sightings/{world.sighting.pk}/", {"notes": "x"}, format="json").status_code == 200
    )
    assert writer.get("/api/auth/tokens/").status_code == 200  # its own tokens: any scope lists them
    # The policy still holds: a token of a viewer with every scope may not write.
    viewer = api(make(world, ["read", "write", "match"], user="viewer"))
    assert (
        viewer.patch(f"/api/sightings/{world.sighting.pk}/", {"notes": "y"}, format="json").status_code == 403
    )


def test_tokens_expire_are_revoked_and_are_audited(world: World) -> None:
    secret = make(world, ["read"], days=1)
    client = api(secret)
    assert client.get("/api/sightings/").status_code == 200
    AuthToken.objects.filter(token_key=secret[: CONSTANTS.TOKEN_KEY_LENGTH]).update(
        expiry=timezone.now() - dt.timedelta(seconds=1)
    )
    assert client.get("/api/sightings/").status_code == 401

    other = make(world, ["read"])
    stranger = browser(world, "viewer").post(
        f"/tokens/{other[: CONSTANTS.TOKEN_KEY_LENGTH]}/revoke/", follow=True
    )
    assert "No such token of yours" in stranger.content.decode()
    assert api(other).get("/api/sightings/").status_code == 200
    revoked = browser(world).post(f"/tokens/{other[: CONSTANTS.TOKEN_KEY_LENGTH]}/revoke/", follow=True)
    assert "The token is revoked" in revoked.content.decode()
    assert api(other).get("/api/sightings/").status_code == 401
    actions = list(AuditEvent.objects.filter(actor_name="curator").values_list("action", flat=True))
    assert actions.count("token.create") == 2 and actions.count("token.revoke") == 1
    logged = " ".join(AuditEvent.objects.values_list("object_repr", flat=True))
    assert not any(t.digest in logged for t in AuthToken.objects.all())  # never a token's hash


def test_a_token_form_with_mistakes_is_refused_in_words(world: World) -> None:
    for data, words in (
        ({"name": "x", "days": 30}, "This field is required"),
        ({"name": "x", "scopes": ["read"], "days": 0}, "greater than or equal to 1"),
        ({"name": "x", "scopes": ["read"], "days": 9999}, "less than or equal to 365"),
        ({"name": "x", "scopes": ["admin"], "days": 30}, "Select a valid choice"),
    ):
        page = browser(world).post("/tokens/", data)
        assert page.status_code == 400 and words in page.content.decode(), data
    assert PersonalToken.objects.count() == 0


def test_a_password_exchange_token_keeps_every_scope(world: World) -> None:
    _, secret = AuthToken.objects.create(user=world.users["curator"])
    assert (
        api(secret).patch(f"/api/sightings/{world.sighting.pk}/", {"notes": "z"}, format="json").status_code
        == 200
    )
