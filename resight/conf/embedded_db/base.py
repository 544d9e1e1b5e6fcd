"""PostgreSQL backend that starts the embedded server lazily, on the first connection.

Lazy so that commands that never touch the database (ruff's and mypy's settings import, `check`) do not
start a server, and so that each process joins the shared server through `embedded_db`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
from django.db.backends.postgresql import base as postgresql

from resight.conf.embedded_db import server as embedded_db


class DatabaseWrapper(postgresql.DatabaseWrapper):
    _created_databases: set[tuple[Path, str]] = set()
    _create_lock = threading.Lock()  # threads of one process connect for the first time together

    def get_connection_params(self) -> dict[str, Any]:
        server = embedded_db.ensure_running(Path(self.settings_dict["PGDATA"]))
        self.settings_dict["HOST"] = str(server.socket_dir)
        self.settings_dict["PORT"] = str(server.port)
        self.settings_dict["USER"] = server.user
        self._ensure_database(server)
        return super().get_connection_params()

    def _ensure_database(self, server: embedded_db.EmbeddedServer) -> None:
        """Create the platform's database on a fresh data directory (initdb only makes `postgres`)."""
        name = self.settings_dict["NAME"]
        key = (Path(self.settings_dict["PGDATA"]), name)
        if not name or name == "postgres":  # None: Django's connection without a database
            return
        with self._create_lock:
            if key in self._created_databases:
                return
            with psycopg.connect(
                host=str(server.socket_dir),
                port=server.port,
                user=server.user,
                dbname="postgres",
                autocommit=True,
            ) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{name}"')
            self._created_databases.add(key)
