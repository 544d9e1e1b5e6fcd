"""Fuzzing the whole REST API from its own OpenAPI schema (schemathesis), as every kind of user.

Structure:
- One test per user (pytest parametrize): anonymous (no credentials of ours), viewer, contributor, curator,
  share_view (a partner with a view agreement), share_curate_leopard (a partner curating leopards only) and
  outsider (admin of an unrelated organisation). Each gets a fresh `world` (function-scoped) with what the
  shared fixture lacks for every route to have something behind it (a finished match job with an open and a
  closed candidate, a merge, an upload batch), and a real API token from POST /api/auth/token/.
- The schema is the one the platform serves (GET /api/schema/), fetched once through the WSGI application.
- Inside the test, every operation of the schema gets its own Hypothesis run of MAX_EXAMPLES cases
  (`operation.as_strategy()`, positive and negative data; derandomized, no example database, no shrinking),
  each sent to resight.conf.wsgi.application in process by schemathesis' WSGI transport, on the test's
  database connection. A Hypothesis run per operation, not one over the whole schema, so that every
  operation gets its share of examples. In half of the positive cases, ids in the path, the query and the
  body are swapped for ids of the world's real objects (and files for a real photo or CSV, a few fields for
  values random text rarely satisfies), so requests reach the services and not only the 404s.
- Every case runs in a savepoint that is rolled back afterwards, with the cache (DRF's throttles) cleared:
  a generated write, a logout or token revocation (of the test's own token too), a failed sign-in counted by
  django-axes never changes what the next case sees, so no case hides a bug behind state an earlier one
  left, and nothing needs excluding: the token endpoint, logout, logoutall and token deletion are fuzzed
  like the rest.
- Each response must pass schemathesis' checks: no 5xx, a documented status code, Content-Type and headers,
  a body matching the documented schema, and schema-violating (negative) data refused with a 4xx.
- Failures of all operations are collected and reported together, each with schemathesis' reproduction
  (a curl command); then a sanity check that the run reached the API as that user (anonymous: nothing but
  the token endpoint succeeds; signed-in users: every list answers 200).

The examples are the same on every run (about a minute and a half for the seven users on two cores).
RESIGHT_FUZZ_EXAMPLES=50 RESIGHT_FUZZ_RANDOM=1 explores further with fresh random cases.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache as django_cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, models, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from knox.models import AuthToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client

from catalog import services as catalog_services
from catalog.bulk import services as bulk
from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species, UploadBatch
from identification.curation import identities
from identification.models import EmbeddingSpace, IdentityChange, JobState, MatchCandidate, MatchJob
from resight.conf.wsgi import application
from resight.models import Organization, Project, Right, SharingAgreement
from tests.conftest import PASSWORD, World, photo_bytes

USERS = ["anonymous", "viewer", "contributor", "curator", "share_view", "share_curate_leopard", "outsider"]
MAX_EXAMPLES = int(os.environ.get("RESIGHT_FUZZ_EXAMPLES", 10))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    # Not positive_data_acceptance: data the schema allows is still refused for business reasons (a box
    # outside the photo, a time zone that does not exist, an individual of another species, a project the
    # user may not write to) with the documented 400, 403 or 404.
    negative_data_rejection,
]
# The route's objects, for the `{id}` of its paths.
PATH_MODELS: dict[str, type[models.Model]] = {
    "/api/projects/": Project,
    "/api/species/": Species,
    "/api/individuals/": Individual,
    "/api/sightings/": Sighting,
    "/api/media-assets/": MediaAsset,
    "/api/annotations/": Annotation,
    "/api/upload-batches/": UploadBatch,
    "/api/match-jobs/": MatchJob,
    "/api/identity-changes/": IdentityChange,
    "/media/": MediaAsset,
    "/annotations/": Annotation,
}
FILES = {
    "file": photo_bytes(seed=77),
    "csv_file": b"file,time,latitude,longitude\nleopard.jpg,2026-03-01T06:00:00Z,-1.2,35.1\n",
}


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The platform's WSGI application, called in process on the test's database connection: as Django's
    test client does, the connection is not closed at the start and end of each request (which would end
    the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@cache
def served_schema() -> dict[str, Any]:
    response = Client(application).get("/api/schema/", query_string={"format": "json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    schema: dict[str, Any] = response.get_json()
    return schema


def fuller_world(world: World) -> None:
    curator = world.users["curator"]
    # An active embedding space of its own: new jobs (POST /api/match-jobs/) then never load a model.
    space = EmbeddingSpace.objects.filter(is_active=True).first() or EmbeddingSpace.objects.create(
        key="fuzz@4", model_name="fuzz", version="4", dim=4, is_active=True
    )
    done = MatchJob.objects.create(
        annotation=world.annotation,
        space=space,
        state=JobState.DONE,
        project_ids=[world.project.pk],
        probably_new=False,
        finished_at=datetime.now(UTC),
    )
    MatchCandidate.objects.create(
        job=done,
        rank=1,
        individual=world.leopard_individual,
        annotation=world.annotation,
        global_score=0.9,
        probability=0.97,
        band="excellent",
        model_key=space.key,
    )
    # A candidate from a match-against-only agreement: another organisation's individual, reported but
    # closed (its code and annotation are null for everyone outside that organisation).
    SharingAgreement.objects.create(
        project=world.other_project, grantee=world.project.organization, rights=[Right.MATCH]
    )
    closed = Individual.objects.create(project=world.other_project, species=world.leopard, code="X1")
    MatchCandidate.objects.create(
        job=done,
        rank=2,
        individual=closed,
        annotation=world.annotation,  # (stands in for one of X1's photos: never shown outside its project)
        global_score=0.5,
        probability=0.3,
        band="uncertain",
        model_key=space.key,
    )
    second = catalog_services.individual_create(
        actor=curator, project=world.project, species=world.leopard, code="L2"
    )
    identities.individual_merge(actor=curator, source=second, target=world.leopard_individual)
    bulk.batch_create(actor=curator, project=world.project, species=world.leopard)


def pools_of(world: World, token_keys: list[str]) -> dict[str, list[Any]]:
    """Real values by parameter or field name, so that generated requests sometimes name existing objects
    and sometimes pass validation."""

    def pks(model: type[models.Model]) -> list[Any]:
        return list(model._default_manager.order_by("pk").values_list("pk", flat=True))

    individuals = pks(Individual)
    annotations = pks(Annotation)
    return {
        "project": pks(Project),
        "organization": pks(Organization),
        "species": pks(Species),
        "individual": individuals,
        "other": individuals,
        "target": individuals,
        "sighting": pks(Sighting),
        "media_asset": pks(MediaAsset),
        "annotation": annotations,
        "annotations": [[a] for a in annotations],
        "candidate_rank": [1, 2],
        "token_key": token_keys,
        "variant": ["original", "preview", "thumbnail"],
        "username": sorted(user.username for user in world.users.values()),
        "password": [PASSWORD, "wrong-password"],
        "time_zone": ["UTC", "Africa/Nairobi"],
        "observed_at": ["2026-03-03T06:00:00Z"],
        "default_time": ["2026-03-03T06:00:00Z"],
        "slug": ["new-project"],
        "x": [0, 10],
        "y": [0, 10],
        "width": [50, 100],
        "height": [50, 100],
    }


def realistic(case: Any, draw: Any, pools: dict[str, list[Any]]) -> None:
    """In half of the positive cases, swap generated values for real ones (see the module's docstring).
    Negative cases keep the value that makes them invalid."""
    if case.meta is None or not case.meta.generation.mode.is_positive or not draw(st.booleans()):
        return
    path_parameters = case.path_parameters or {}
    if "id" in path_parameters:
        model = next((m for prefix, m in PATH_MODELS.items() if case.path.startswith(prefix)), None)
        real = sorted(model._default_manager.values_list("pk", flat=True)) if model is not None else []
        if real:
            path_parameters["id"] = draw(st.sampled_from(real))
    body = case.body if isinstance(case.body, dict) else {}
    for container in (path_parameters, case.query or {}, body):
        for name in list(container):
            if name != "id" and pools.get(name):
                container[name] = draw(st.sampled_from(pools[name]))
            elif name in FILES and case.media_type == "multipart/form-data":
                container[name] = FILES[name]


@contextmanager
def rolled_back() -> Iterator[None]:
    with transaction.atomic():
        try:
            yield
        finally:
            transaction.set_rollback(True)


def token_for(username: str) -> str:
    response = Client(application).post("/api/auth/token/", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["token"]
    return token


def fuzz(operation: Any, headers: dict[str, str], pools: dict[str, list[Any]]) -> Counter[int]:
    """One Hypothesis run over `operation`: the statuses it answered; the first failure raised."""
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=MAX_EXAMPLES,
        database=None,  # deadline and derandomize: the suite's profile (tests/conftest.py)
        phases=[Phase.generate],  # no shrinking: the report comes at once, with its curl command
        suppress_health_check=[*settings().suppress_health_check, HealthCheck.filter_too_much],
    )
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        ),
        data=st.data(),
    )
    def run(case: Any, data: st.DataObject) -> None:
        realistic(case, data.draw, pools)
        with rolled_back():
            django_cache.clear()
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

    run()
    return statuses


@pytest.mark.parametrize("username", USERS)
def test_every_operation_answers_as_documented(username: str, world: World, wsgi_app: Any) -> None:
    fuller_world(world)
    headers = {} if username == "anonymous" else {"Authorization": f"Token {token_for(username)}"}
    someone_elses = AuthToken.objects.create(user=world.users["admin"])[0].token_key
    pools = pools_of(world, [*AuthToken.objects.values_list("token_key", flat=True), someone_elses])
    schema = schemathesis.openapi.from_dict(served_schema())
    schema.app = wsgi_app
    answered: dict[str, Counter[int]] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema is valid OpenAPI
        operation = result.ok()
        try:
            answered[operation.label] = fuzz(operation, headers, pools)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)

    assert len(answered) == sum(len(ops) for ops in served_schema()["paths"].values())
    succeeded = {label for label, statuses in answered.items() if any(200 <= s < 300 for s in statuses)}
    if username == "anonymous":
        assert succeeded <= {"POST /api/auth/token/"}
    else:
        lists = {label for label in answered if label.startswith("GET /api/") and "{" not in label}
        assert lists <= succeeded, lists - succeeded
