"""Django's own checks and the migrations stay clean (also run by `make test` through pytest)."""

import io

import pytest
from django.core.management import call_command


def test_system_checks_pass():
    call_command("check", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_no_missing_migrations():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
