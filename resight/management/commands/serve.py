"""`manage.py serve`: the one command that runs the platform.

Migrates, loads the demo catalogue (unless --no-demo), then serves on 127.0.0.1 with waitress, a
production WSGI server that needs no compiler or system service. Ctrl-C or SIGTERM stops it cleanly,
and with it the embedded PostgreSQL when no other process holds it.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds normally, so atexit handlers (the embedded server's stop) run.
    sys.exit(0)


class Command(BaseCommand):
    help = "Run Resight: migrate, load the demo (first start), serve HTTP."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo catalogue")

    def handle(self, *args: Any, **options: Any) -> None:
        from waitress import serve

        from catalog import demo
        from resight.wsgi import application

        signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
        self.stdout.flush()
        serve(
            application,
            host=options["host"],
            port=options["port"],
            threads=options["threads"],
            ident="Resight",
        )
