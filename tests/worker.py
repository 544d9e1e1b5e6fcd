"""A real Celery worker for tests: a separate process on the tests' own broker folder and database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from resight.conf.celery import app as celery_app
from resight.conf.celery import worker_command
from resight.health import QUEUES

REPO = Path(__file__).resolve().parents[1]  # the repository root (tests/ is one level down)


def process_env(media_root: Path) -> dict[str, str]:
    """The environment of a platform process (a worker, a web process) on the tests' database, broker and
    media folder."""
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "resight.conf.settings_test",
        "RESIGHT_DB_NAME": connection.settings_dict["NAME"],  # the test database
        "RESIGHT_MEDIA_ROOT": str(media_root),
        "RESIGHT_BROKER_DIR": str(settings.BROKER_DIR),
    }
    if "DATABASE_URL" in os.environ:  # a database server of its own (make cluster-test): its test database
        server = urlsplit(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = urlunsplit(server._replace(path=f"/{connection.settings_dict['NAME']}"))
    return env


class Worker:
    def __init__(self, media_root: Path, queues: str = "interactive") -> None:
        self.media_root = media_root
        self.queues = queues
        self.env: dict[str, str] = {}  # extra settings for the worker process (RESIGHT_* variables)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = process_env(self.media_root) | self.env
        self.process = subprocess.Popen(
            # --without-heartbeat too: a solo worker of one test needs no heartbeats to anyone.
            [*worker_command(self.queues, pool="solo", loglevel="WARNING"), "--without-heartbeat"],
            cwd=REPO,
            env=env,
            start_new_session=True,
        )

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def empty_broker() -> None:
    """No message of an earlier test reaches the next test's worker."""
    if settings.CELERY_BROKER_URL == "filesystem://":  # the tests' own broker folder
        shutil.rmtree(settings.BROKER_DIR, ignore_errors=True)
        for sub in ("queue", "processed"):
            (settings.BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
        return
    with celery_app.connection_for_write() as conn:  # a broker server (make cluster-test)
        for queue in QUEUES:
            with contextlib.suppress(*conn.channel_errors):
                conn.default_channel.queue_purge(queue)


@pytest.fixture
def worker(transactional_db, media_root: Path) -> Iterator[Worker]:
    empty_broker()
    w = Worker(media_root)
    yield w
    w.stop()


def wait_for(predicate, timeout: float = 180.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")
