"""Test settings: the platform's settings with a broker folder of the tests' own, so messages enqueued by
tests never reach a worker of the running platform. The database is the same embedded server (pytest-django
uses a `test_` database on it)."""

import os
from pathlib import Path

os.environ.setdefault(
    "RESIGHT_BROKER_DIR", str(Path(__file__).resolve().parents[2] / ".state" / "test-broker")
)

from resight.conf.settings import *  # noqa: F403

# Test databases are flushed between tests with TRUNCATE, which the append-only logs otherwise refuse
# (resight migration 0006).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c resight.allow_truncate=on"  # noqa: F405
