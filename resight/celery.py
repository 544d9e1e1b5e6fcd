"""The Celery app. Queues by workload: `interactive` (match jobs a curator waits for), `bulk` (embeddings and
features of new photos, re-embedding), `training`. Interactive work never waits behind bulk work because each
queue gets its own worker process (see the serve command and docker/compose.yaml)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.settings")

app = Celery("resight")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
