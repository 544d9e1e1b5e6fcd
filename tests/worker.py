"""A real Celery worker for tests: a separate process on the tests' own broker folder and database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from resight.conf.celery import worker_command

REPO = Path(__file__).resolve().parents[1]  # the repository root (tests/ is one level down)


class Worker:
    def __init__(self, media_root: Path, queues: str = "interactive") -> None:
        self.media_root = media_root
        self.queues = queues
        self.env: dict[str, str] = {}  # extra settings for the worker process (RESIGHT_* variables)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = os.environ | {
            "DJANGO_SETTINGS_MODULE": "resight.conf.settings_test",
            "RESIGHT_DB_NAME": connection.settings_dict["NAME"],  # the test database
            "RESIGHT_MEDIA_ROOT": str(self.media_root),
            "RESIGHT_BROKER_DIR": str(settings.BROKER_DIR),
            **self.env,
        }
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


@pytest.fixture
def worker(transactional_db, media_root: Path) -> Iterator[Worker]:
    # The tests' own broker folder, emptied: no message of an earlier run reaches this worker.
    shutil.rmtree(settings.BROKER_DIR, ignore_errors=True)
    for sub in ("queue", "processed"):
        (settings.BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
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
