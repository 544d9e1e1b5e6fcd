"""SIGTERM (what `docker stop` and systemd send) stops `manage.py serve` with its workers and beat within
seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.db import connection

from resight.conf.cluster import free_port
from tests.worker import REPO, wait_for

STOP_WITHIN_S = 10.0


@pytest.fixture
def serving(transactional_db, media_root: Path, tmp_path: Path):
    """`manage.py serve` on the test database and the tests' broker folder, with three workers and beat."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "resight.conf.settings_test",
        "RESIGHT_DB_NAME": connection.settings_dict["NAME"],
        "RESIGHT_MEDIA_ROOT": str(media_root),
        "RESIGHT_BROKER_DIR": str(settings.BROKER_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--no-demo", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the test's kill below reaches only it
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _ready(port: int, log: Path) -> bool:
    try:
        answered = requests.get(f"http://127.0.0.1:{port}/login/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
    # Each of the three workers logs "ready." once it consumes its queue.
    return answered and log.read_text(errors="replace").count(" ready.") >= 3


def test_sigterm_stops_server_workers_and_beat_within_seconds(serving) -> None:
    process, port, log = serving
    wait_for(lambda: _ready(port, log), timeout=240, step=0.5)
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    # serve, three workers with a pool child each, and beat
    assert len(tree) >= 8, log.read_text(errors="replace")[-3000:]

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=STOP_WITHIN_S)
    took = time.monotonic() - started

    assert not alive, f"still running after {STOP_WITHIN_S} s: {[p.pid for p in alive]}"
    assert process.wait() == 0
    print(f"stopped in {took:.1f} s")
