"""Operations: Prometheus metrics and structured logs with request, task and job ids."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta

from django.utils import timezone
from django_guid import clear_guid, set_guid
from pythonjsonlogger.json import JsonFormatter

from catalog.models import MediaAsset
from identification.models import EmbeddingSpace, JobState, MatchJob
from resight import logs
from tests.conftest import World


def _jobs(world: World) -> None:
    now = timezone.now()
    space = EmbeddingSpace.objects.create(key="test@1", model_name="test", version="1", dim=8)
    for state, took in ((JobState.DONE, 3), (JobState.DONE, 40), (JobState.FAILED, 1)):
        job = MatchJob.objects.create(
            annotation=world.annotation,
            space=space,
            state=state,
            started_at=now - timedelta(seconds=took),
            finished_at=now,
        )
        # Queued a second before it started (created_at is set on creation).
        MatchJob.objects.filter(pk=job.pk).update(created_at=now - timedelta(seconds=took + 1))
    MatchJob.objects.create(annotation=world.annotation, space=space, state=JobState.QUEUED)


def test_metrics_report_jobs_latency_queues_media_and_requests(world: World, client) -> None:
    _jobs(world)
    client.get("/health/live/")
    page = client.get("/metrics")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/plain")
    text = page.content.decode()
    assert 'resight_match_jobs{state="done"} 2.0' in text
    assert 'resight_match_jobs{state="queued"} 1.0' in text
    # 3 s and 40 s runs: one under 5 s, both under 60 s; one failed job of 1 s.
    assert 'resight_match_run_seconds_bucket{le="5",state="done"} 1.0' in text
    assert 'resight_match_run_seconds_bucket{le="60",state="done"} 2.0' in text
    assert 'resight_match_run_seconds_count{state="failed"} 1.0' in text
    assert 'resight_match_job_latency_seconds_sum{state="done"} 45.0' in text
    assert 'resight_queue_messages{queue="interactive"}' in text
    stored = sum(MediaAsset.objects.values_list("size_bytes", flat=True))
    assert f"resight_photo_upload_bytes {float(stored)}" in text
    assert "django_http_requests_total_by_method_total" in text  # django-prometheus' request metrics


def test_metrics_ask_for_the_token_when_one_is_set(db, client, settings) -> None:
    settings.RESIGHT_METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


def test_a_request_keeps_its_id_and_answers_with_it(client) -> None:
    given = uuid.uuid4().hex
    response = client.get("/health/live/", HTTP_X_REQUEST_ID=given)
    assert response["X-Request-ID"] == given
    fresh = client.get("/health/live/")["X-Request-ID"]
    assert fresh and fresh != given
    # Not a UUID (a header an attacker wrote into the logs): replaced by a fresh id.
    assert client.get("/health/live/", HTTP_X_REQUEST_ID="x\nFAKE LINE")["X-Request-ID"] != "x\nFAKE LINE"


def _formatted(formatter: logging.Formatter | None) -> str:
    assert formatter is not None
    handler = logging.getLogger().handlers[0]  # the console handler of settings.LOGGING
    record = logging.LogRecord("identification.tasks", logging.INFO, __file__, 1, "ranked %s", ("L1",), None)
    assert handler.filter(record)
    return formatter.format(record)


def test_log_lines_carry_request_and_job_ids_as_text_and_as_json() -> None:
    request_id = uuid.uuid4().hex
    set_guid(request_id)
    try:
        with logs.job(42):
            text = _formatted(logging.getLogger().handlers[0].formatter)
            line = json.loads(_formatted(JsonFormatter(logs.JSON_FORMAT)))
    finally:
        clear_guid()
    assert f"request={request_id} task=- job=42 ranked L1" in text
    assert line["correlation_id"] == request_id and line["job_id"] == 42
    assert line["message"] == "ranked L1" and line["task_id"] == "-"
    outside = _formatted(logging.getLogger().handlers[0].formatter)
    assert "request=- task=- job=-" in outside
