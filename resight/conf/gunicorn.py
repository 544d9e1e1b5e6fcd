"""gunicorn's settings for the web tier of the scaled-out configuration (docker/Dockerfile, and
resight.conf.cluster in the tests): `gunicorn -c python:resight.conf.gunicorn resight.conf.wsgi:application`.

Processes from WEB_CONCURRENCY (gunicorn's own variable), threads from RESIGHT_WEB_THREADS."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", 2))
worker_class = "gthread"
threads = int(os.environ.get("RESIGHT_WEB_THREADS", 4))
# A request runs at most the database's statement limit (RESIGHT_DB_STATEMENT_TIMEOUT_MS, 30 s) and more.
timeout = 60
# SIGTERM (docker stop, systemd): requests in flight get this long, well within a 10 s stop.
graceful_timeout = 5
# Idle connections kept longer than clients keep theirs: gunicorn's 2 s default closed connections that
# clients were just reusing ("connection aborted" on an idempotent GET).
keepalive = 30
accesslog = "-"
# Uploads are read whole before the view runs (Django's upload handlers); no size limit here, the
# platform's own limits answer with a clear error (RESIGHT_MAX_UPLOAD_BYTES, RESIGHT_MAX_ZIP_BYTES).
limit_request_line = 8190
