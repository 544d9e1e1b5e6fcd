"""The OpenAPI schema documents what the API answers besides success: its error responses
(resight.http.schema), once for every operation, and empty query values as allowed (no filter, the first
page)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import World

DETAIL = {"$ref": "#/components/schemas/Detail"}
WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture
def served_schema(db) -> dict[str, Any]:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def body_schema(response: dict[str, Any]) -> dict[str, Any]:
    return response["content"]["application/json"]["schema"]


def test_every_operation_documents_the_errors_the_policy_and_the_guards_answer(
    served_schema: dict[str, Any],
) -> None:
    for path, method, operation in operations(served_schema):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert body_schema(responses["400"])["type"] == "object", where
        assert body_schema(responses["503"]) == DETAIL, where
        assert ("409" in responses) == (method in WRITES), where
        assert ("415" in responses) == ("requestBody" in operation), where
        if path == "/api/auth/token/":  # anonymous by design: no 401, but its own 429
            assert {"401", "403", "404"}.isdisjoint(responses) and "429" in responses
            continue
        for code in ("401", "403", "404"):
            assert body_schema(responses[code]) == DETAIL, (where, code)


def test_an_operations_own_error_documentation_wins_over_the_default(served_schema: dict[str, Any]) -> None:
    token = served_schema["paths"]["/api/auth/token/"]["post"]["responses"]
    assert token["400"]["description"] == "Wrong username or password, or one missing."
    assert "Retry-After" in token["429"]["description"]


def test_empty_query_values_are_documented_as_allowed_and_mean_no_filter(
    world: World, served_schema: dict[str, Any]
) -> None:
    parameters = served_schema["paths"]["/api/individuals/"]["get"]["parameters"]
    assert all(p["allowEmptyValue"] for p in parameters if p["in"] == "query")
    client = APIClient()
    client.force_authenticate(world.users["curator"])
    everything = client.get("/api/individuals/").json()
    empty = client.get(
        "/api/individuals/", {"sex": "", "species": "", "page": "", "search": "", "ordering": ""}
    )
    assert empty.status_code == 200 and empty.json() == everything
    assert client.get("/api/individuals/", {"sex": "neither"}).status_code == 400
