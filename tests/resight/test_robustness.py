"""Odd input gets a clear 4xx, never a server error; the audit log keeps what operators do and refuses to be
emptied; instance-wide figures are the operators'."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from catalog import services as catalog_services
from identification.matching import services as matching_services
from identification.models import EmbeddingSpace
from resight.models import AuditEvent, Membership, Right, Role, SharingAgreement
from tests.conftest import World, make_user


def page_client(world: World, user: str = "curator") -> Client:
    client = Client()
    client.force_login(world.users[user])
    return client


def api(world: World, user: str = "curator") -> APIClient:
    client = APIClient()
    client.force_authenticate(world.users[user])
    return client


def test_the_embedding_map_answers_for_odd_or_empty_requests(world: World) -> None:
    client = page_client(world)
    space = EmbeddingSpace.objects.create(key="test@1", model_name="test", version="1", dim=8)
    assert client.get("/models/map.svg", {"space": "abc", "species": "x"}).status_code == 404
    assert client.get("/models/map.svg", {"space": "9" * 30, "species": "1"}).status_code == 404
    empty = client.get("/models/map.svg", {"space": space.pk, "species": world.leopard.pk})
    assert empty.status_code == 200 and empty["Content-Type"] == "image/svg+xml"
    assert client.get("/models/", {"run": "99999999999999999999999"}).status_code == 200


def test_a_deeply_nested_json_body_is_a_400(world: World) -> None:
    body = "[" * 50_000 + "]" * 50_000
    response = api(world).generic(
        "PATCH", f"/api/sightings/{world.sighting.pk}/", body, content_type="application/json"
    )
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize(
    "url", ["/individuals/?q=%00", "/api/sightings/?search=%00", "/api/individuals/?%00=1"]
)
def test_a_nul_in_a_query_string_is_a_400(world: World, url: str) -> None:
    client = page_client(world)
    assert client.get(url).status_code == 400


@pytest.mark.parametrize(
    "value", ["²", "9" * 40, "-1", "1e3", "١٢"]
)  # a Unicode digit, beyond bigint, signs and Arabic-Indic digits
def test_ids_in_query_strings_never_fail_a_page(world: World, value: str) -> None:
    client = page_client(world)
    for url in ("/individuals/", "/sightings/new/", "/review/"):
        params = {"project": value, "species": value}
        assert client.get(url, params).status_code in (200, 302), url
    assert client.post("/notifications/read/", {"id": value}).status_code == 302


@pytest.mark.parametrize(
    "filters",
    [
        {"days": 1e308},
        {"days": -1},
        {"radius_km": float("inf")},
        {"radius_km": 1e9},
        {"days": True},
        {"x": 1},
    ],
)
def test_match_filters_out_of_range_are_refused_where_the_job_is_made(world: World, filters) -> None:
    zebra = world.zebra_sighting.annotations.get()
    body = json.dumps({"annotation": zebra.pk, "filters": filters})  # Infinity as JavaScript writes it
    response = api(world).generic("POST", "/api/match-jobs/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    with pytest.raises(ValidationError):
        matching_services.match_job_start(actor=world.users["curator"], annotation=zebra, filters=filters)


def test_admin_edits_are_audited_with_before_and_after(world: World) -> None:
    operator = make_user("operator", is_superuser=True, is_staff=True)
    admin = Client()
    admin.force_login(operator)
    agreement = SharingAgreement.objects.get(grantee__slug="share-view")
    response = admin.post(
        f"/admin/resight/sharingagreement/{agreement.pk}/change/",
        {
            "project": world.project.pk,
            "grantee": agreement.grantee_id,
            "rights": ["view", "curate"],
            "species": [world.leopard.pk],
            "expires_at_0": "",
            "expires_at_1": "",
            "status": "active",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.sharingagreement.change")
    assert event.actor_name == "operator" and event.project_id == world.project.pk
    assert event.changes["rights"] == [str(["view"]), str(["view", "curate"])]
    assert "species" in event.changes

    membership = Membership.objects.get(user=world.users["viewer"])
    admin.post(
        f"/admin/resight/membership/{membership.pk}/change/",
        {"user": membership.user_id, "organization": membership.organization_id, "role": Role.ADMIN},
    )
    assert AuditEvent.objects.get(action="admin.membership.change").changes["role"] == ["viewer", "admin"]

    viewer = world.users["viewer"]
    admin.post(
        f"/admin/auth/user/{viewer.pk}/change/",
        {
            "username": "viewer",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "last_login_0": "",
            "last_login_1": "",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    event = AuditEvent.objects.get(action="admin.user.change")
    assert event.changes["is_superuser"] == [False, True]
    assert all("pbkdf2" not in str(v) and "md5" not in str(v) for v in event.changes.values())


def test_the_append_only_logs_refuse_truncate(world: World) -> None:
    for table in ("resight_auditevent", "identification_decision", "identification_identitychange"):
        with transaction.atomic(), connection.cursor() as cursor:
            # The test settings allow it for flushing test databases; the platform's connections don't.
            cursor.execute("SET LOCAL resight.allow_truncate = 'off'")
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.exists()


def test_the_audit_before_is_what_the_change_replaced_not_a_stale_copy(world: World) -> None:
    stale = type(world.sighting).objects.get(pk=world.sighting.pk)  # read by one curator...
    catalog_services.sighting_update(
        actor=world.users["admin"], sighting=world.sighting, changes={"notes": "by admin"}
    )  # ...changed by another meanwhile...
    catalog_services.sighting_update(actor=world.users["curator"], sighting=stale, changes={"observer": "B"})
    event = AuditEvent.objects.filter(action="sighting.update").order_by("-id").first()
    assert event is not None and event.actor_name == "curator"
    assert event.changes["observer"] == ["", "B"]
    # The stale copy carried notes="" and overwrote them: the log says so, from the stored value.
    assert event.changes["notes"] == ["by admin", ""]

    individual = world.leopard_individual
    stale_individual = type(individual).objects.get(pk=individual.pk)
    catalog_services.individual_update(
        actor=world.users["admin"], individual=individual, changes={"name": "Ada"}
    )
    catalog_services.individual_update(
        actor=world.users["curator"], individual=stale_individual, changes={"notes": "scar"}
    )
    event = AuditEvent.objects.filter(action="individual.update").order_by("-id").first()
    assert event is not None and event.changes["name"] == ["Ada", ""]


def test_the_model_registry_keeps_instance_wide_figures_for_operators(world: World) -> None:
    EmbeddingSpace.objects.create(key="test@1", model_name="test", version="1", dim=8, is_active=True)
    outsider = page_client(world, "outsider").get("/models/").content.decode()
    assert "identified since the last training run" not in outsider and "<th>Vectors</th>" not in outsider
    operator = Client()
    operator.force_login(make_user("operator", is_superuser=True, is_staff=True))
    page = operator.get("/models/").content.decode()
    assert "identified since the last training run" in page and "<th>Vectors</th>" in page
    assert "Leopard" not in outsider.split("Embedding map")[1]  # no species the outsider cannot see


def test_grants_of_a_match_only_partner_do_not_open_the_registry_map(world: World) -> None:
    agreement = SharingAgreement.objects.get(grantee__slug="share-match")
    assert agreement.rights == [Right.MATCH]
    space = EmbeddingSpace.objects.create(key="test@2", model_name="test", version="2", dim=8)
    svg = page_client(world, "share_match").get(
        "/models/map.svg", {"space": space.pk, "species": world.leopard.pk}
    )
    assert svg.status_code == 200 and "(0 photos)" in svg.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/api/sightings/?project={id}",
        "/api/individuals/?project={id}",
        "/api/media-assets/?project={id}",
        "/api/annotations/?individual={id}",
        "/api/upload-batches/?project={id}",
        "/api/projects/?organization={id}",
        "/api/identity-changes/?individual={id}",
    ],
)
def test_a_filter_on_an_id_tells_a_hidden_object_from_no_object_in_no_way(world: World, url: str) -> None:
    """The outsider filters by an id of another organisation's object and by an id nothing has: both
    answer an empty list (a choice filter answered 400 for the one and 200 for the other)."""
    hidden = {"project": world.project.pk, "individual": world.leopard_individual.pk}
    hidden_id = hidden.get(url.split("?")[1].split("=")[0], world.project.organization_id)
    client = api(world, "outsider")
    for ident in (hidden_id, 987_654_321):
        response = client.get(url.format(id=ident))
        assert response.status_code == 200, response.content
        assert response.json()["results"] == []
