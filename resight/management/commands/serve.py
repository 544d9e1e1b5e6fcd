"""`manage.py serve`: the one command that runs the platform.

Migrates, loads the demo catalogue (unless --no-demo), starts the Celery workers (one per queue:
`interactive`, `bulk`, `training`, so a curator's match job never waits behind an import or a training run)
and Celery beat (the periodic retraining check), then serves on
127.0.0.1 with waitress, a production WSGI server that needs no compiler or system service. Ctrl-C or
SIGTERM stops the workers and the server cleanly, and with them the embedded PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from resight.conf.celery import WORKER_ENV, worker_command


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds normally, so atexit handlers (the embedded server's stop) run. One stop is enough: a
    # second signal (an impatient Ctrl-C, a supervisor repeating itself) must not interrupt stopping workers.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(0)


class Command(BaseCommand):
    help = "Run Resight: migrate, load the demo (first start), serve HTTP."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo catalogue")
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="Do not start Celery workers (run them yourself, e.g. on GPU machines)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from waitress import serve

        from catalog import demo
        from resight.conf.wsgi import application

        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        signal.signal(signal.SIGINT, _exit_on_sigterm)
        call_command("migrate", interactive=False, verbosity=0)
        if not options["no_demo"] and not demo.demo_loaded():
            self.stdout.write("Loading the demo catalogue (synthetic photos, a few seconds)...")
            demo.load_demo()
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"\nResight is running at {url}"))
        if not options["no_demo"]:
            self.stdout.write(
                f"Demo logins (password '{demo.DEMO_PASSWORD}'): curator, viewer, contributor, "
                "admin (operator, /admin/), partner (another organisation)\n"
            )
        workers = [] if options["no_workers"] else start_workers()
        self.stdout.flush()
        try:
            serve(
                application, host=options["host"], port=options["port"], **server_options(options["threads"])
            )
        finally:
            stop_workers(workers)


def server_options(threads: int) -> dict[str, Any]:
    """Waitress, configured for the platform rather than left at its defaults: request bodies up to the
    largest zip an upload may send (its default, 1 GiB, would cut RESIGHT_MAX_ZIP_BYTES short), idle
    connections closed after a minute, poll() instead of select() (no 1,024 descriptor ceiling), and behind
    a proxy (RESIGHT_BEHIND_PROXY) the client address taken from the proxy's X-Forwarded-For only when the
    request comes from RESIGHT_TRUSTED_PROXY, so sign-in lockouts count per client and nobody else can
    forge the header. Database waits are bounded per request (resight.http.middleware.DatabaseLimits), so a
    lock never holds every thread."""
    options: dict[str, Any] = {
        "threads": threads,
        "ident": "Resight",
        "max_request_body_size": settings.RESIGHT_MAX_ZIP_BYTES + 16 * 1024 * 1024,
        "channel_timeout": 60,
        "connection_limit": 200,
        "asyncore_use_poll": True,
    }
    if settings.RESIGHT_BEHIND_PROXY:
        options |= {
            "trusted_proxy": settings.RESIGHT_TRUSTED_PROXY,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True,
        }
    return options


# One process per workload, so an hour of training never holds up an upload, nor an upload a match job.
WORKERS = {"interactive": "interactive", "bulk": "bulk", "training": "training"}


def start_workers() -> list[subprocess.Popen[bytes]]:
    processes = []
    for name, queues in WORKERS.items():
        processes.append(subprocess.Popen(worker_command(queues, name=name), env=os.environ | WORKER_ENV))
    # Celery beat: the periodic retraining check (CELERY_BEAT_SCHEDULE), its state in the state folder.
    schedule = Path(settings.STATE_DIR) / "celerybeat-schedule"
    beat = [sys.executable, "-m", "celery", "-A", "resight", "beat", "--schedule", str(schedule)]
    processes.append(subprocess.Popen([*beat, "--loglevel", "INFO"]))
    return processes


# What a worker may take beyond its soft shutdown (cancelling the task, closing the broker connection)
# before it is killed: a worker stuck in its shutdown must not keep the platform from stopping.
SHUTDOWN_MARGIN_S = 1.5


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each worker and beat: a worker finishes its task within its soft shutdown or hands it back
    (WORKER_ENV). Whatever still runs after that, pool children included, is killed: the handed-back work
    is taken over by the next worker to start (identification.matching.jobs.recover_orphaned)."""
    tree = [p for process in processes for p in _tree(process.pid)]
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + settings.CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _, alive = psutil.wait_procs(tree, timeout=0.5)
    for leftover in alive:  # a pool child its worker did not reap
        leftover.kill()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
