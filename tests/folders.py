"""Folders for database servers the tests start (the embedded server's tests, the cluster)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def server_folder(prefix: str) -> Iterator[Path]:
    """A folder outside pytest's temporary tree. Run as root, PostgreSQL runs as an unprivileged user that
    must traverse the folders above its data; pgserver opens them (o+x), but every pytest session that starts
    meanwhile (another checkout's, an operator's) closes /tmp/pytest-of-<user> again (0700), and pg_ctl then
    cannot reach the data folder to stop or restart the server (a chance failure seen once)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
