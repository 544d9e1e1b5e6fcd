"""Resight project package: settings, urls, and the platform layer (organisations, projects, sharing,
permissions, audit)."""

from resight.conf.celery import app as celery_app

__all__ = ["celery_app"]
