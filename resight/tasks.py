"""Celery tasks of the platform layer (queue `bulk`): webhook deliveries, retried with backoff."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from resight import webhooks


@shared_task(bind=True, acks_late=True, max_retries=webhooks.MAX_ATTEMPTS - 1)
def deliver_webhook(self: Any, delivery_id: int) -> None:
    """One attempt; another after 30 s, 1, 2, 4 and 8 minutes while the endpoint fails (then given up)."""
    if not webhooks.attempt(delivery_id):
        raise self.retry(countdown=settings.RESIGHT_WEBHOOK_RETRY_S * 2**self.request.retries)
