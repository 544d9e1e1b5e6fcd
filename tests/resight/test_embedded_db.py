"""The embedded PostgreSQL: a crashed holder or a killed server never blocks the next start, and the last
clean exit stops the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.folders import server_folder

HOLD = """
import os, sys, psycopg
from pathlib import Path
from resight.conf.embedded_db import server as embedded_db
server = embedded_db.ensure_running(Path(sys.argv[1]))
with psycopg.connect(host=str(server.socket_dir), port=server.port, user=server.user, dbname="postgres") as c:
    assert c.execute("select 1").fetchone() == (1,)
print(os.getpid(), flush=True)
if sys.argv[2] == "crash":
    os.kill(os.getpid(), 9)
if sys.argv[2] == "wait":
    sys.stdin.read()  # hold the server until the test closes our stdin
"""


def run_holder(pgdata: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HOLD, str(pgdata), mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


@pytest.fixture
def pgdata():
    with server_folder("resight-embedded-") as root:
        path = root / "pg"
        yield path
        if (pid := postmaster_pid(path)) is not None:  # never leave a server behind
            os.kill(pid, signal.SIGTERM)


def test_clean_exit_stops_the_server(pgdata: Path) -> None:
    result = run_holder(pgdata, "clean")
    assert result.returncode == 0, result.stderr
    assert postmaster_pid(pgdata) is None


def test_a_crashed_holder_does_not_keep_the_server_or_block_the_next_start(pgdata: Path) -> None:
    crashed = run_holder(pgdata, "crash")
    assert crashed.returncode == -9
    crashed_pid = int(crashed.stdout.split()[0])
    assert postmaster_pid(pgdata) is not None  # the server outlived its killed holder
    assert crashed_pid in json.loads((pgdata / ".handle_pids.json").read_text())

    result = run_holder(pgdata, "clean")
    assert result.returncode == 0, result.stderr
    assert postmaster_pid(pgdata) is None  # the stale holder was dropped, so the last exit stopped it


def test_the_last_live_holder_stops_the_server_even_if_another_crashed_meanwhile(pgdata: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(pgdata), "wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
    )
    assert holder.stdout is not None
    holder.stdout.readline()  # connected
    assert run_holder(pgdata, "crash").returncode == -9
    assert holder.communicate(input="", timeout=60)[1] is None
    assert holder.returncode == 0
    assert postmaster_pid(pgdata) is None


def test_a_killed_server_leaves_a_stale_pid_file_that_does_not_block(pgdata: Path) -> None:
    crashed = run_holder(pgdata, "crash")
    assert crashed.returncode == -9
    pid = postmaster_pid(pgdata)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not psutil.pid_exists(pid):
            break
        time.sleep(0.05)
    assert (pgdata / "postmaster.pid").exists()  # stale lock left behind by the crash
    result = run_holder(pgdata, "clean")
    assert result.returncode == 0, result.stderr
    assert postmaster_pid(pgdata) is None
