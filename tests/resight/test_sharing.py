"""Sharing agreements made by the organisations: proposed by an admin of the sharing side, accepted or
declined by an admin of the other side, revoked by either; audited, notified, granting nothing until accepted
and nothing once revoked; the same over REST. Who may do what is written out by hand below."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.test import Client

from resight import sharing
from resight.models import AgreementStatus, AuditEvent, Notification, Organization, Role, SharingAgreement
from resight.permissions import Action, forget_grants, granted, users_granted
from tests.conftest import World, make_user


@pytest.fixture
def lakeside(world: World) -> Organization:
    org = Organization.objects.create(name="Lakeside University", slug="lakeside-uni")
    world.users["lake_admin"] = make_user("lake_admin", org, Role.ADMIN)
    world.users["lake_curator"] = make_user("lake_curator", org, Role.CURATOR)
    return org


def propose(world: World, lakeside: Organization, **kw: Any) -> SharingAgreement:
    return sharing.agreement_propose(
        actor=world.users["admin"], project=world.project, grantee=lakeside, rights=["view", "match"], **kw
    )


def may_view(user: Any, world: World) -> bool:
    forget_grants(user)
    return granted(user, world.project.pk, Action.VIEW)


def test_propose_accept_revoke_grants_only_while_active_and_logs_and_tells_each_step(
    world: World, lakeside: Organization
) -> None:
    partner = world.users["lake_curator"]
    agreement = propose(world, lakeside, species=[world.leopard])
    assert agreement.status == AgreementStatus.PROPOSED and not may_view(partner, world)
    told = Notification.objects.filter(recipient=world.users["lake_admin"], kind="agreement").get()
    assert "proposes to share Big Cats" in told.text and "view, match against on Leopard" in told.text

    sharing.agreement_accept(actor=world.users["lake_admin"], agreement=agreement)
    assert may_view(partner, world)
    forget_grants(partner)
    assert not granted(partner, world.project.pk, Action.VIEW, [world.zebra.pk])  # leopards only
    assert Notification.objects.filter(recipient=world.users["admin"], text__contains="was accepted").exists()

    sharing.agreement_revoke(actor=world.users["admin"], agreement=agreement)
    assert not may_view(partner, world)
    assert Notification.objects.filter(
        recipient=world.users["lake_admin"], text__contains="was revoked"
    ).exists()
    steps = AuditEvent.objects.filter(object_type="resight.SharingAgreement", object_id=str(agreement.pk))
    assert list(steps.order_by("id").values_list("action", "actor_name")) == [
        ("agreement.propose", "admin"),
        ("agreement.accept", "lake_admin"),
        ("agreement.revoke", "admin"),
    ]
    assert steps.get(action="agreement.revoke").changes["status"] == ["active", "revoked"]


def test_who_may_propose_answer_and_revoke(world: World, lakeside: Organization) -> None:
    for user in ("curator", "contributor", "viewer", "lake_admin", "outsider"):
        with pytest.raises((PermissionDenied, Http404)):  # 404 for those who cannot see the project
            sharing.agreement_propose(
                actor=world.users[user], project=world.project, grantee=lakeside, rights=["view"]
            )
    with pytest.raises(ValidationError):  # the project's own organisation
        sharing.agreement_propose(
            actor=world.users["admin"],
            project=world.project,
            grantee=world.project.organization,
            rights=["view"],
        )
    for rights in ([], ["view", "own"], ["admin"]):
        with pytest.raises(ValidationError):
            sharing.agreement_propose(
                actor=world.users["admin"], project=world.project, grantee=lakeside, rights=rights
            )
    with pytest.raises(ValidationError):
        propose(world, lakeside, expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    agreement = propose(world, lakeside)
    with pytest.raises(ValidationError):  # one proposal awaiting an answer at a time
        propose(world, lakeside)
    for user in ("admin", "curator", "lake_curator", "outsider"):
        with pytest.raises(PermissionDenied):
            sharing.agreement_accept(actor=world.users[user], agreement=agreement)
    sharing.agreement_accept(actor=world.users["lake_admin"], agreement=agreement)
    with pytest.raises(ValidationError, match="active already"):
        sharing.agreement_decline(actor=world.users["lake_admin"], agreement=agreement)
    for user in ("curator", "lake_curator", "outsider"):
        with pytest.raises(PermissionDenied):
            sharing.agreement_revoke(actor=world.users[user], agreement=agreement)
    sharing.agreement_revoke(actor=world.users["lake_admin"], agreement=agreement)  # either side
    with pytest.raises(ValidationError, match="revoked already"):
        sharing.agreement_revoke(actor=world.users["admin"], agreement=agreement)
    declined = propose(world, lakeside)
    sharing.agreement_decline(actor=world.users["lake_admin"], agreement=declined)
    assert not may_view(world.users["lake_curator"], world)


def client(world: World, user: str | None) -> Client:
    c = Client()
    if user is not None:
        c.force_login(world.users[user])
    return c


# (user, expected outcome) for each step on a fresh proposal, HTML and API alike: ok, forbidden (a side of
# the agreement without the right), not-found (neither side), login (anonymous).
SETTLE_MATRIX: dict[str, dict[str, str]] = {
    "accept": {
        "lake_admin": "ok",
        "admin": "forbidden",
        "curator": "forbidden",
        "lake_curator": "forbidden",
        "outsider": "not-found",
        "anonymous": "login",
    },
    "decline": {
        "lake_admin": "ok",
        "admin": "forbidden",
        "viewer": "forbidden",
        "lake_curator": "forbidden",
        "outsider": "not-found",
        "anonymous": "login",
    },
    "revoke": {
        "admin": "ok",
        "lake_admin": "ok",
        "curator": "forbidden",
        "lake_curator": "forbidden",
        "share_view": "not-found",
        "anonymous": "login",
    },
}


def outcome(status: int, location: str = "") -> str:
    if status == 401 or (status == 302 and "/login/" in location):
        return "login"
    return {403: "forbidden", 404: "not-found", 400: "bad-request"}.get(
        status, "ok" if 200 <= status < 400 else f"unexpected {status}"
    )


@pytest.mark.parametrize("surface", ["html", "api"])
@pytest.mark.parametrize(
    ("verb", "user"), [(verb, user) for verb, users in SETTLE_MATRIX.items() for user in users]
)
def test_settle_matrix(
    world: World, lakeside: Organization, api_client_for, verb: str, user: str, surface: str
):
    agreement = propose(world, lakeside)
    account = world.users.get(user)
    if surface == "html":
        response = client(world, user if account else None).post(f"/sharing/{agreement.pk}/{verb}/")
        got = outcome(response.status_code, response.get("Location", ""))
    else:
        response = api_client_for(account).post(f"/api/sharing-agreements/{agreement.pk}/{verb}/")
        got = outcome(response.status_code)
        if user == "anonymous" and got == "forbidden":
            got = "login"  # DRF answers 403 to a session-only anonymous client
    assert got == SETTLE_MATRIX[verb][user], (surface, verb, user, response.status_code)
    agreement.refresh_from_db()
    settled = {"accept": "active", "decline": "declined", "revoke": "revoked"}[verb]
    assert (agreement.status == settled) == (SETTLE_MATRIX[verb][user] == "ok")


@pytest.mark.parametrize(
    ("user", "want"),
    [
        ("admin", 201),
        ("curator", 400),  # the project is not one they manage: not a choice
        ("viewer", 400),
        ("lake_admin", 400),
        ("outsider", 400),
    ],
)
def test_proposals_over_rest(world: World, lakeside: Organization, api_client_for, user: str, want: int):
    body = {
        "project": world.project.pk,
        "grantee": lakeside.pk,
        "rights": ["view"],
        "species": [world.leopard.pk],
    }
    response = api_client_for(world.users[user]).post("/api/sharing-agreements/", body, format="json")
    assert response.status_code == want, response.content
    if want == 201:
        assert response.json()["status"] == "proposed" and response.json()["created_by"] == "admin"
        listed = api_client_for(world.users["lake_admin"]).get("/api/sharing-agreements/?status=proposed")
        assert [a["id"] for a in listed.json()["results"]] == [response.json()["id"]]
        assert api_client_for(world.users["outsider"]).get("/api/sharing-agreements/").json()["count"] == 0


def test_the_sharing_page_says_each_right_in_words_and_offers_what_the_user_may_do(
    world: World, lakeside: Organization
) -> None:
    agreement = propose(world, lakeside, species=[world.leopard])
    ours = client(world, "admin").get("/sharing/").content.decode()
    assert "Big Cats" in ours and "Lakeside University" in ours and "Only Leopard" in ours
    assert "have their own photos compared with the project" in ours  # match, in words
    assert f"/sharing/{agreement.pk}/revoke/" in ours and f"/sharing/{agreement.pk}/accept/" not in ours
    assert 'action="/sharing/propose/"' in ours
    theirs = client(world, "lake_admin").get("/sharing/").content.decode()
    assert f"/sharing/{agreement.pk}/accept/" in theirs and f"/sharing/{agreement.pk}/decline/" in theirs
    assert 'action="/sharing/propose/"' not in theirs  # Lakeside has no project to share
    viewer = client(world, "viewer").get("/sharing/").content.decode()
    assert "Lakeside University" in viewer and "/revoke/" not in viewer and "/propose/" not in viewer
    outsider = client(world, "outsider").get("/sharing/").content.decode()
    assert f'id="agreement-{agreement.pk}"' not in outsider  # (Lakeside is among its possible partners)

    response = client(world, "admin").post(
        "/sharing/propose/",
        {
            "project": world.project.pk,
            "grantee": lakeside.pk,
            "rights": ["curate"],
            "expires_on": "2001-01-01",
        },
    )
    assert response.status_code == 400 and "Choose a day after today" in response.content.decode()
    response = client(world, "admin").post(
        "/sharing/propose/", {"project": world.project.pk, "grantee": lakeside.pk, "rights": ["curate"]}
    )
    assert response.status_code == 400 and "awaits their answer already" in response.content.decode()


def test_an_embargo_keeps_agreements_waiting_until_its_day(world: World) -> None:
    partner = world.users["share_view"]
    today = dt.datetime.now(dt.UTC).date()
    world.project.embargo_until = today + dt.timedelta(days=1)
    world.project.save()
    assert not may_view(partner, world)
    assert partner not in users_granted(world.project.pk, Action.VIEW)
    page = client(world, "share_view").get("/sharing/").content.decode()
    assert f"Embargoed until {world.project.embargo_until:%Y-%m-%d}" in page
    assert client(world, "share_view").get(f"/api/sightings/{world.sighting.pk}/").status_code == 404
    world.project.embargo_until = today  # the day has come
    world.project.save()
    assert may_view(partner, world)
    assert client(world, "share_view").get(f"/api/sightings/{world.sighting.pk}/").status_code == 200
    assert may_view(world.users["viewer"], world)  # the project's own members never wait


def test_partners_accept_the_terms_of_use_first_and_again_when_they_change(
    world: World, api_client_for
) -> None:
    partner = world.users["share_view"]
    agreement = SharingAgreement.objects.get(grantee__slug="share-view")
    world.project.terms_of_use = "Cite the Big Cats project in every publication."
    world.project.save()
    assert not may_view(partner, world)
    assert may_view(world.users["viewer"], world)  # members accept nothing
    page = client(world, "share_view").get("/sharing/").content.decode()
    assert "Cite the Big Cats project" in page and f"/sharing/{agreement.pk}/terms/" in page
    assert client(world, "viewer").get("/sharing/").content.decode().count("/terms/") == 0
    assert client(world, "outsider").post(f"/sharing/{agreement.pk}/terms/").status_code == 404

    response = client(world, "share_view").post(f"/sharing/{agreement.pk}/terms/")
    assert response.status_code == 302 and may_view(partner, world)
    assert AuditEvent.objects.filter(action="terms.accept", actor_name="share_view").count() == 1
    assert (
        f"/sharing/{agreement.pk}/terms/" not in client(world, "share_view").get("/sharing/").content.decode()
    )

    world.project.terms_of_use += " And share your photos back."
    world.project.save()
    assert not may_view(partner, world)  # new terms: accepted again
    answer = api_client_for(partner).post(f"/api/sharing-agreements/{agreement.pk}/accept-terms/")
    assert answer.status_code == 200 and may_view(partner, world)
    contributor = api_client_for(world.users["contributor"])
    assert contributor.post(f"/api/sharing-agreements/{agreement.pk}/accept-terms/").status_code == 403


def test_the_licence_and_rights_holder_travel_with_the_export(world: World, api_client_for) -> None:
    admin = api_client_for(world.users["admin"])
    response = admin.patch(
        f"/api/projects/{world.project.pk}/",
        {"licence": "CC0-1.0", "rights_holder": "Mara Trust"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["licence"] == "CC0-1.0"
    assert admin.patch(f"/api/projects/{world.project.pk}/", {"licence": "all rights"}).status_code == 400
    inp = client(world, "curator").get(
        f"/projects/{world.project.pk}/population/mark.inp?species={world.leopard.pk}"
    )
    assert inp.status_code == 200
    assert "licence CC0-1.0; rights holder Mara Trust" in inp.content.decode().splitlines()[0]


def test_a_region_shares_only_the_sightings_inside_it(
    world: World, lakeside: Organization, api_client_for
) -> None:
    agreement = sharing.agreement_propose(
        actor=world.users["admin"],
        project=world.project,
        grantee=lakeside,
        rights=["view"],
        region=(-1.3, 35.0, -1.1, 35.2),  # around the leopard's den, not the zebra at -1.5, 35.5
    )
    sharing.agreement_accept(actor=world.users["lake_admin"], agreement=agreement)
    partner = api_client_for(world.users["lake_curator"])
    listed = {s["id"] for s in partner.get("/api/sightings/").json()["results"]}
    assert listed == {world.sighting.pk}
    assert partner.get(f"/api/sightings/{world.zebra_sighting.pk}/").status_code == 404
    assert partner.get(f"/api/individuals/{world.leopard_individual.pk}/").status_code == 200
    assert partner.get(f"/api/individuals/{world.zebra_individual.pk}/").status_code == 404
    page = client(world, "lake_admin").get("/sharing/").content.decode()
    assert "only sightings within latitude -1.3 to -1.1, longitude 35 to 35.2" in page

    form = {"project": world.project.pk, "grantee": world.project.organization_id, "rights": ["view"]}
    other = Organization.objects.create(name="Other Uni", slug="other-uni")
    form["grantee"] = other.pk
    flipped = client(world, "admin").post(
        "/sharing/propose/", {**form, "south": 5, "west": 0, "north": 1, "east": 1}
    )
    assert flipped.status_code == 400 and "South &lt;= north" in flipped.content.decode()
    partial = client(world, "admin").post("/sharing/propose/", {**form, "south": 1})
    assert partial.status_code == 400 and "all four" in partial.content.decode()
    api = api_client_for(world.users["admin"])
    body = {"project": world.project.pk, "grantee": other.pk, "rights": ["view"], "region_south": 1}
    assert api.post("/api/sharing-agreements/", body, format="json").status_code == 400
