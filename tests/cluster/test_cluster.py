"""The scaled-out configuration on this machine's services, under faults: PostgreSQL over TCP, Redis, two
gunicorn processes, two workers per queue, beat. Every test leaves the cluster whole for the next one (they
run in random order)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from celery import Celery

from resight import backup
from resight.conf.cluster import Cluster
from tests.cluster.client import Api

pytestmark = pytest.mark.cluster


def sql(cluster: Cluster, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(cluster.database_url) as conn:
        return conn.execute(query, args).fetchall()


def assert_sound(job: dict[str, Any]) -> None:
    """A finished job: done, with one candidate per individual, ranked 1..n."""
    assert job["state"] == "done", job["error"]
    ranks = [c["rank"] for c in job["candidates"]]
    assert ranks == list(range(1, len(ranks) + 1))
    individuals = [c["individual"] for c in job["candidates"]]
    assert len(set(individuals)) == len(individuals)


def worker_holding(cluster: Cluster, job_id: int, timeout: float = 120) -> str:
    """The name of the worker whose pool process claimed the job (claimed_by is host:pid of that process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sql(cluster, "SELECT claimed_by, state FROM identification_matchjob WHERE id = %s", job_id)
        claimed_by, state = rows[0]
        if state in ("embedding", "searching", "reranking") and claimed_by:
            pid = int(claimed_by.rpartition(":")[2])
            for name, process in cluster.processes.items():
                family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]
                if pid in family:
                    return name
        time.sleep(0.01)
    raise AssertionError(f"no worker claimed job {job_id} in {timeout} s")


def test_every_queue_has_two_workers_and_the_web_tier_two_processes(cluster: Cluster) -> None:
    ready = Api(cluster.url).get("/health/ready/")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"]["detail"] == {"interactive": 2, "bulk": 2, "training": 2}
    gunicorn = psutil.Process(cluster.processes["web"].pid)
    assert len(gunicorn.children()) == 2


def test_the_web_tier_holds_no_torch_and_task_processes_yield_the_cpu(cluster: Cluster) -> None:
    gunicorn = psutil.Process(cluster.processes["web"].pid)
    for process in [gunicorn, *gunicorn.children()]:
        libraries = {Path(m.path).name for m in process.memory_maps()}
        assert not any(name.startswith("libtorch") for name in libraries), process.pid
    for name, worker in cluster.processes.items():
        if name.startswith("worker-"):
            pool = psutil.Process(worker.pid).children()
            assert pool and all(child.nice() == 10 for child in pool), name  # RESIGHT_WORKER_NICE
            assert psutil.Process(worker.pid).nice() == 0, name


def test_a_photo_stored_by_the_web_tier_is_matched_by_a_worker(cluster: Cluster, curator: Api) -> None:
    annotation = curator.new_photo_of_demo_individual(1, seed=51)
    job = curator.wait_final(curator.match(annotation["id"])["id"])
    assert_sound(job)
    assert job["candidates"][0]["individual_code"] == "MARA-L002"
    # The web process wrote the photo to the shared media folder; the worker read it from there.
    (name,) = sql(
        cluster,
        "SELECT m.file FROM catalog_mediaasset m JOIN catalog_annotation a ON a.media_asset_id = m.id "
        "WHERE a.id = %s",
        annotation["id"],
    )[0]
    assert (cluster.media / name).is_file()


def test_a_request_id_follows_the_work_into_the_workers_logs(cluster: Cluster, curator: Api) -> None:
    request_id = uuid.uuid4().hex
    curator.headers["X-Request-ID"] = request_id  # as a proxy in front would set it
    annotation = curator.new_photo_of_demo_individual(1, seed=59)
    job = curator.wait_final(curator.match(annotation["id"])["id"])
    assert job["state"] == "done"
    worker_lines = [
        line
        for log in cluster.logs.glob("worker-*.log")
        for line in log.read_text(errors="replace").splitlines()
        if f"request={request_id}" in line
    ]
    assert any(f"job={job['id']} match job {job['id']} done" in line for line in worker_lines), worker_lines


def test_metrics_add_up_the_web_processes(cluster: Cluster, curator: Api) -> None:
    for _ in range(10):
        curator.get("/api/individuals/")
    text = Api(cluster.url).get("/metrics").text
    served = sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("django_http_requests_total_by_view_transport_method_total{")
        and 'view="api:individual-list"' in line
    )
    assert served >= 10
    assert "# TYPE resight_match_jobs gauge" in text
    assert 'resight_queue_messages{queue="interactive"}' in text


def test_a_task_delivered_twice_runs_once(cluster: Cluster, curator: Api) -> None:
    annotation = curator.new_photo_of_demo_individual(2, seed=52)
    job = curator.match(annotation["id"])
    # The same message again, twice, to both interactive workers: as a broker that redelivers would.
    broker = Celery(broker=cluster.broker_url, set_as_current=False)  # the tests' app stays current
    for _ in range(2):
        broker.send_task("identification.tasks.run_match_job", args=[job["id"]], queue="interactive")
    done = curator.wait_final(job["id"])
    assert_sound(done)
    assert done["attempts"] == 1
    time.sleep(2)  # the duplicate deliveries have run by now: nothing changed
    assert curator.get(f"/api/match-jobs/{job['id']}/").json() == done


def test_a_worker_killed_mid_job_loses_nothing(cluster: Cluster, curator: Api) -> None:
    annotation = curator.new_photo_of_demo_individual(3, seed=53)
    job = curator.match(annotation["id"])
    victim = worker_holding(cluster, job["id"])
    cluster.kill(victim)  # kill -9, pool child included: no shutdown code runs
    try:
        # The other interactive worker takes it over once the lease runs out (beat's recovery round).
        done = curator.wait_final(job["id"], timeout=300)
    finally:
        queue, _, index = victim.removeprefix("worker-").rpartition("-")
        cluster.start_worker(queue, int(index))  # as the supervisor (compose, systemd) restarts it
    assert_sound(done)
    assert done["attempts"] == 2
    assert done["candidates"][0]["individual_code"] == "MARA-L004"
    cluster.wait_ready()


def test_the_broker_restarts_and_no_job_is_lost(cluster: Cluster, curator: Api) -> None:
    annotations = [curator.new_photo_of_demo_individual(0, seed=s) for s in (54, 55)]
    jobs = [curator.match(a["id"]) for a in annotations]
    cluster.restart_broker()
    # Accepted while the broker was away or just back: the web tier retries the publish.
    annotations.append(curator.new_photo_of_demo_individual(0, seed=56))
    jobs.append(curator.match(annotations[-1]["id"]))
    for job in jobs:
        done = curator.wait_final(job["id"], timeout=300)
        assert_sound(done)
        assert done["candidates"][0]["individual_code"] == "MARA-L001"
    cluster.wait_ready()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restarts_and_the_platform_carries_on(cluster: Cluster, curator: Api, mode: str) -> None:
    cluster.restart_database(mode)  # immediate: a crash; the server recovers from its write-ahead log
    # Connections of every process were cut: the next request of each reconnects (CONN_HEALTH_CHECKS).
    answers = [curator.get("/api/individuals/").status_code for _ in range(6)]
    assert set(answers) <= {200, 503}, answers  # never a 500
    assert answers[-1] == 200
    annotation = curator.new_photo_of_demo_individual(2, seed=57 if mode == "fast" else 58)
    done = curator.wait_final(curator.match(annotation["id"])["id"])
    assert_sound(done)
    cluster.wait_ready()


def _files_out_of_step(cluster: Cluster) -> tuple[list[str], list[str]]:
    """(files no row names, names no file has), both sorted."""
    # Every file column of the schema (the ones a backup archives): a file none of them names is an orphan.
    referenced = {
        name
        for table, column in backup.file_columns()
        for (name,) in sql(cluster, f'SELECT "{column}" FROM "{table}"')
        if name
    }
    stored = {str(p.relative_to(cluster.media)) for p in cluster.media.rglob("*") if p.is_file()}
    return sorted(stored - referenced), sorted(referenced - stored)


def test_no_file_is_orphaned_and_no_row_points_at_a_missing_file(cluster: Cluster) -> None:
    # A worker writes a file just before the row that names it commits: the invariant holds at rest, so
    # a difference must last (the demo's photos may still be embedding when this test runs first).
    deadline = time.monotonic() + 120
    while (out_of_step := _files_out_of_step(cluster)) != ([], []) and time.monotonic() < deadline:
        time.sleep(1)
    orphans, missing = out_of_step
    assert not orphans, orphans[:5]
    assert not missing, missing[:5]


def test_sigterm_stops_a_web_process_gracefully_and_gunicorn_replaces_it(cluster: Cluster) -> None:
    gunicorn = psutil.Process(cluster.processes["web"].pid)
    before = {p.pid for p in gunicorn.children()}
    os.kill(min(before), signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = {p.pid for p in gunicorn.children()}
        if len(now) == 2 and now != before:
            break
        time.sleep(0.2)
    assert len(now) == 2 and min(before) not in now
    assert Api(cluster.url).get("/health/live/").status_code == 200
