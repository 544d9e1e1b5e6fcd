"""Prometheus metrics at /metrics.

Request counts and latencies come from django-prometheus' middleware (per web process; with several
processes, PROMETHEUS_MULTIPROC_DIR lets prometheus_client add them up). What the platform does (match jobs
by state and their latency, the queues' depth, the media stored) is read from the database and the broker at
scrape time, so every web process answers the same numbers however many there are.

Our own view rather than django-prometheus' (`django_prometheus.exports`): that one leaves collectors of the
default registry out in multi-process mode, and has no access check. RESIGHT_METRICS_TOKEN, when set, must
come as `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator

import prometheus_client
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from resight.health import QUEUES, queue_depth

# Seconds: a match job takes a few seconds on a GPU, up to minutes on a busy CPU.
BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# Latencies of the jobs finished in this window: a histogram of recent work, not of all time.
WINDOW_HOURS = 24


class PlatformCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        """The metrics' names without values: registering must not query the database (it happens when the
        URLs load, also in `migrate` on an empty database)."""
        yield GaugeMetricFamily("resight_match_jobs", "", labels=["state"])
        yield HistogramMetricFamily("resight_match_job_latency_seconds", "", labels=["state"])
        yield HistogramMetricFamily("resight_match_run_seconds", "", labels=["state"])
        yield GaugeMetricFamily("resight_photos", "")
        yield GaugeMetricFamily("resight_photo_upload_bytes", "")
        yield GaugeMetricFamily("resight_queue_messages", "", labels=["queue"])

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._latency("resight_match_job_latency_seconds", "created_at", "queued to finished")
        yield from self._latency("resight_match_run_seconds", "started_at", "claimed by a worker to finished")
        yield from self._media()
        yield from self._queues()

    def _jobs(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("resight_match_jobs", "Match jobs by state", labels=["state"])
        with connection.cursor() as cursor:
            cursor.execute("SELECT state, count(*) FROM identification_matchjob GROUP BY state")
            for state, count in cursor.fetchall():
                gauge.add_metric([state], count)
        yield gauge

    def _latency(self, name: str, start: str, what: str) -> Iterator[Metric]:
        """A histogram by final state (done, failed) of the jobs finished in the last WINDOW_HOURS."""
        histogram = HistogramMetricFamily(
            name, f"Match jobs finished in the last {WINDOW_HOURS} h: {what}", labels=["state"]
        )
        counts = ", ".join(f"count(*) FILTER (WHERE s <= {b})" for b in BUCKETS)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT state, {counts}, count(*), coalesce(sum(s), 0) FROM ("  # module constants only
                f"  SELECT state, extract(epoch FROM finished_at - {start}) AS s FROM identification_matchjob"
                f"  WHERE finished_at > now() - interval '{WINDOW_HOURS} hours' AND {start} IS NOT NULL"
                ") AS finished GROUP BY state"
            )
            for state, *row in cursor.fetchall():
                *cumulative, total, seconds = row
                buckets = [(str(b), c) for b, c in zip(BUCKETS, cumulative, strict=True)] + [("+Inf", total)]
                histogram.add_metric([state], buckets, float(seconds))
        yield histogram

    def _media(self) -> Iterator[Metric]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), coalesce(sum(size_bytes), 0) FROM catalog_mediaasset")
            photos, stored = cursor.fetchone()
        yield GaugeMetricFamily("resight_photos", "Photos stored", value=photos)
        yield GaugeMetricFamily(
            "resight_photo_upload_bytes", "Bytes of the photos uploaded (originals)", stored
        )

    def _queues(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "resight_queue_messages", "Messages waiting in each queue", labels=["queue"]
        )
        for queue in QUEUES:
            gauge.add_metric([queue], queue_depth(queue))
        yield gauge


PLATFORM = PlatformCollector()


def _registry() -> prometheus_client.CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return prometheus_client.REGISTRY  # this process's request metrics, and PLATFORM (below)
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # the request metrics of every web process
    registry.register(PLATFORM)
    return registry


if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    prometheus_client.REGISTRY.register(PLATFORM)


def _allowed(request: HttpRequest) -> bool:
    token = settings.RESIGHT_METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("A metrics token is required.", status=401, content_type="text/plain")
    page = prometheus_client.generate_latest(_registry())
    return HttpResponse(page, content_type=prometheus_client.CONTENT_TYPE_LATEST)
