"""Resight scaled out on one machine, as docker/compose.yaml runs it on many: PostgreSQL + pgvector over TCP
(resight.conf.embedded_db.standalone), Redis as broker and shared cache, the web tier as several gunicorn
processes behind one port, two or more Celery workers per queue, beat, and one shared media folder.

The cluster tests (tests/cluster) and the load benchmark (benchmarks/load.py) start one; an operator can too:

    python -m resight.conf.cluster run /srv/resight-cluster --port 8000
    python -m resight.conf.cluster services /tmp/services -- pytest tests/identification/test_worker.py
    python -m resight.conf.cluster services --broker amqp://guest:guest@127.0.0.1:5672// /tmp/s -- pytest ...

Every process gets its settings from the environment only (`Cluster.env`), exactly as the compose file's
services do, and is a child of this one: SIGTERM or Ctrl-C stops them all within seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import urlopen

from resight.conf.celery import WORKER_ENV, worker_command
from resight.conf.embedded_db import standalone
from resight.health import QUEUES

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClusterConfig:
    root: Path  # the cluster's own folder: database, broker data, media, logs
    web_processes: int = 2
    web_threads: int = 4
    workers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUEUES, 2))
    web_port: int = field(default_factory=free_port)
    db_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    database: str = "resight"
    extra_env: dict[str, str] = field(default_factory=dict)  # RESIGHT_* settings for every process


class Cluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.root = config.root.resolve()
        self.logs = self.root / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # --- where things are ---------------------------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.web_port}"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.config.db_port}/{self.config.database}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.config.redis_port}/0"

    def env(self) -> dict[str, str]:
        """The settings of every process, as the compose file gives them."""
        return os.environ | {
            "DJANGO_SETTINGS_MODULE": "resight.conf.settings",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            "RESIGHT_CACHE_URL": f"redis://127.0.0.1:{self.config.redis_port}/1",
            "RESIGHT_STATE_DIR": str(self.root / "state"),
            "RESIGHT_MEDIA_ROOT": str(self.media),
            "RESIGHT_SECRET_KEY": "cluster-on-one-machine-not-a-secret",
            "RESIGHT_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            # The web processes' request metrics, added up at /metrics (prometheus_client multi-process).
            "PROMETHEUS_MULTIPROC_DIR": str(self.root / "state" / "prometheus"),
            **WORKER_ENV,
            **self.config.extra_env,
        }

    # --- services ---------------------------------------------------------------------------------------
    def start_database(self) -> None:
        standalone.start(self.pgdata, self.config.db_port)
        self._psql(
            f"SELECT 'CREATE DATABASE {self.config.database}' WHERE NOT EXISTS "
            f"(SELECT FROM pg_database WHERE datname = '{self.config.database}')\\gexec"
        )

    def stop_database(self, mode: str = "fast") -> None:
        standalone.stop(self.pgdata, mode)

    def _psql(self, sql: str) -> None:
        psql = Path(standalone._server(self.pgdata).bin_path) / "psql"
        url = f"postgres://postgres@127.0.0.1:{self.config.db_port}/postgres"
        subprocess.run([str(psql), url, "-q", "-v", "ON_ERROR_STOP=1"], input=sql.encode(), check=True)

    def start_broker(self) -> None:
        """Redis with an append-only file, so a restart keeps the queued messages (`appendfsync always`: a
        message the web tier was told is queued is on disk)."""
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        self._spawn(
            "redis",
            [
                server,
                "--port",
                str(self.config.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        )
        self._wait(lambda: self._redis_answers(), "redis", 30)

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.config.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    # --- the platform's processes -----------------------------------------------------------------------
    def migrate(self) -> None:
        self._manage("migrate", "--no-input", "-v", "0")

    def load_demo(self) -> None:
        self._manage("load_demo")

    def _manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env(), check=True)

    def start_web(self) -> None:
        """gunicorn with the Dockerfile's settings (resight.conf.gunicorn)."""
        self._spawn(
            "web",
            [sys.executable, "-m", "gunicorn", "-c", "python:resight.conf.gunicorn",
             "resight.conf.wsgi:application", "--bind", f"127.0.0.1:{self.config.web_port}",
             "--workers", str(self.config.web_processes), "--threads", str(self.config.web_threads)],
        )  # fmt: skip

    def start_worker(self, queue: str, index: int) -> None:
        name = f"{queue}-{index}"
        self._spawn(f"worker-{name}", worker_command(queue, name=name))

    def start_workers(self) -> None:
        for queue, count in self.config.workers.items():
            for index in range(1, count + 1):
                self.start_worker(queue, index)

    def start_beat(self) -> None:
        schedule = self.root / "state" / "celerybeat-schedule"
        self._spawn(
            "beat", [sys.executable, "-m", "celery", "-A", "resight", "beat", "--schedule", str(schedule)]
        )

    def up(self, *, demo: bool = True) -> None:
        """Everything, in the order the compose file's dependencies give; returns once the web tier is ready
        (database, broker, a worker on every queue: /health/ready/)."""
        shutil.rmtree(self.root / "state" / "prometheus", ignore_errors=True)  # counts of an earlier run
        for folder in (self.logs, self.media, self.root / "state" / "prometheus"):
            folder.mkdir(parents=True, exist_ok=True)
        self.start_database()
        self.start_broker()
        self.migrate()
        if demo:
            self.load_demo()
        self.start_workers()
        self.start_beat()
        self.start_web()
        self.wait_ready()

    def wait_ready(self, timeout: float = 300) -> None:
        """Until /health/ready/ passes with every configured worker answering (a worker just restarted
        counts once it consumes its queue)."""
        self._wait(lambda: self._ready() == self.config.workers, "every worker in /health/ready/", timeout)

    def _ready(self) -> dict[str, int] | None:
        try:
            with urlopen(self.url + "/health/ready/", timeout=10) as response:  # our own loopback URL
                counts: dict[str, int] = json.load(response)["checks"]["workers"]["detail"]
        except OSError:  # not up yet, or 503: not ready
            return None
        return {queue: count for queue, count in counts.items() if count or queue in self.config.workers}

    # --- process control --------------------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for name, process in self.processes.items():
                if process.poll() is not None:
                    tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"{name} exited ({process.returncode}) while waiting for {what}:\n{tail}"
                    )
            time.sleep(0.3)
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s (logs in {self.logs})")

    def signal(self, name: str, sig: int) -> None:
        os.killpg(self.processes[name].pid, sig)

    def kill(self, name: str) -> None:
        """kill -9 the process and its children (a worker's pool child too): a crash, not a stop."""
        self.signal(name, signal.SIGKILL)
        self.processes.pop(name).wait()

    def restart_broker(self) -> None:
        redis = self.processes.pop("redis")
        redis.terminate()  # Redis writes its append-only file and exits
        redis.wait(30)
        self.start_broker()

    def restart_database(self, mode: str = "fast") -> None:
        self.stop_database(mode)
        standalone.start(self.pgdata, self.config.db_port)

    def stop(self, timeout: float = 10) -> dict[str, float]:
        """SIGTERM to every process at once, as `docker compose stop` does, then the database. Returns how
        long each took to exit; what has not exited by `timeout` is killed (and reported as `timeout`)."""
        started = time.monotonic()
        took: dict[str, float] = {}
        platform = {n: p for n, p in self.processes.items() if n != "redis"}
        for process in platform.values():
            if process.poll() is None:
                process.terminate()
        for name, process in platform.items():
            try:
                process.wait(max(0.1, timeout - (time.monotonic() - started)))
                took[name] = time.monotonic() - started
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                took[name] = float("inf")
        if "redis" in self.processes and self.processes["redis"].poll() is None:
            self.processes["redis"].terminate()
            self.processes["redis"].wait(30)
        if standalone.running(self.pgdata):
            self.stop_database()
        self.processes.clear()
        return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole cluster until Ctrl-C or SIGTERM")
    run.add_argument("root", type=Path, help="the cluster's folder (database, broker, media, logs)")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--web-processes", type=int, default=2)
    run.add_argument("--workers-per-queue", type=int, default=2)
    run.add_argument("--no-demo", action="store_true")
    services = commands.add_parser(
        "services", help="start only PostgreSQL and Redis, run COMMAND with their URLs set, stop them"
    )
    services.add_argument("root", type=Path)
    services.add_argument(
        "--broker",
        help="a running broker's URL (e.g. RabbitMQ: amqp://guest:guest@127.0.0.1:5672//) "
        "instead of a Redis of its own",
    )
    services.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.command == "services":
        sys.exit(_with_services(args.root, [a for a in args.argv if a != "--"], args.broker))
    config = ClusterConfig(
        args.root,
        web_port=args.port,
        web_processes=args.web_processes,
        workers=dict.fromkeys(QUEUES, args.workers_per_queue),
    )
    cluster = Cluster(config)
    try:
        cluster.up(demo=not args.no_demo)
        print(f"Resight (cluster) is running at {cluster.url}/ with logs in {cluster.logs}", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


def _with_services(root: Path, command: list[str], broker: str | None = None) -> int:
    """The suite's worker tests against the cluster's database server and broker (`make cluster-test`)."""
    cluster = Cluster(ClusterConfig(root))
    try:
        (cluster.root / "state").mkdir(parents=True, exist_ok=True)
        cluster.logs.mkdir(parents=True, exist_ok=True)
        cluster.start_database()
        cluster.start_broker()  # the shared cache, and the broker unless another one is given
        services = {
            "DATABASE_URL": cluster.database_url,
            "CELERY_BROKER_URL": broker or cluster.broker_url,
            "RESIGHT_CACHE_URL": f"redis://127.0.0.1:{cluster.config.redis_port}/1",
        }
        # Not the settings module that importing the Celery app put in this process's environment: the
        # command (pytest) picks its own.
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"} | services
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
