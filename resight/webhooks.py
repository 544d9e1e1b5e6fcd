"""Webhooks: an organisation's admins register an HTTPS endpoint for events of their projects (a match job
finished, an identity confirmed, an upload imported). Each event becomes a delivery row (the log) and a task
on the bulk queue POSTs it as JSON with an HMAC-SHA256 signature of the body under the webhook's secret;
failures are retried with backoff (resight.tasks) and every attempt's outcome is kept.

Endpoints on private, loopback or link-local addresses are refused unless RESIGHT_WEBHOOKS_ALLOW_PRIVATE is
set: a webhook must not make the server call into its own network (server-side request forgery)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from celery import current_app as celery_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from resight import audit
from resight.models import (
    DeliveryState,
    Organization,
    Project,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from resight.permissions import AnyUser, organizations_administered, require_org_admin, user_or_none

TIMEOUT_S = 10
MAX_ATTEMPTS = 6  # the first try and five retries, over about half an hour (resight.tasks)
SIGNATURE_HEADER = "X-Resight-Signature"


def webhooks_for(user: AnyUser) -> models.QuerySet[Webhook]:
    return Webhook.objects.filter(organization__in=organizations_administered(user)).order_by("-created_at")


def webhook_create(*, actor: AnyUser, organization: Organization, url: str, events: Iterable[str]) -> Webhook:
    require_org_admin(actor, organization)
    chosen = [e for e in WebhookEvent.values if e in set(events)]
    if not chosen:
        raise ValidationError({"events": "Choose one or more events."})
    check_url(url)
    webhook = Webhook(
        organization=organization,
        url=url,
        events=chosen,
        secret=secrets.token_hex(32),
        created_by=user_or_none(actor),
    )
    with transaction.atomic():
        webhook.full_clean()
        webhook.save()
        audit.record(actor=actor, action="webhook.create", obj=webhook, changes={"url": [None, url]})
    return webhook


def webhook_delete(*, actor: AnyUser, webhook: Webhook) -> None:
    require_org_admin(actor, webhook.organization)
    with transaction.atomic():
        audit.record(actor=actor, action="webhook.delete", obj=webhook)
        webhook.delete()


def check_url(url: str) -> None:
    """An http(s) URL whose host resolves to public addresses only (unless private ones are allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError({"url": "An http:// or https:// address."})
    if getattr(settings, "RESIGHT_WEBHOOKS_ALLOW_PRIVATE", False):
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except OSError as exc:
        raise ValidationError({"url": f"{parts.hostname} cannot be resolved."}) from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise ValidationError({"url": f"{parts.hostname} is a private or local address ({ip})."})


def emit(event: str, project: Project, payload: dict[str, Any]) -> int:
    """Queue `event` for every active webhook of the project's organisation that asked for it (after the
    caller's transaction commits). Returns how many deliveries were queued."""
    hooks = Webhook.objects.filter(organization_id=project.organization_id, active=True)
    body = {"event": event, "project": {"id": project.pk, "name": project.name}, **payload}
    queued = 0
    for hook in hooks:
        if event in hook.events:
            delivery = WebhookDelivery.objects.create(webhook=hook, event=event, payload=body)
            transaction.on_commit(functools.partial(_enqueue, delivery.pk))
            queued += 1
    return queued


def _enqueue(delivery_id: int) -> None:
    # By name, through the routes (settings.CELERY_TASK_ROUTES): resight.tasks imports this module.
    celery_app.send_task("resight.tasks.deliver_webhook", args=[delivery_id])


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def attempt(delivery_id: int) -> bool:
    """POST the delivery once and log the outcome; True when it is done with (delivered, or given up)."""
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.state in (DeliveryState.DELIVERED, DeliveryState.FAILED):
        return True  # a task delivered twice sends once
    hook = delivery.webhook
    body = json.dumps({"delivery": delivery.pk, **delivery.payload}, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Resight-Webhook/1",
        "X-Resight-Event": delivery.event,
        "X-Resight-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: sign(hook.secret, body),
    }
    status_code, error = None, ""
    try:
        check_url(hook.url)  # the address may resolve elsewhere now than when it was registered
        response = requests.post(
            hook.url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except (requests.RequestException, ValidationError) as exc:
        error = str(exc)[:300]
    attempts = delivery.attempts + 1
    done = not error
    state = (
        DeliveryState.DELIVERED
        if done
        else (DeliveryState.FAILED if attempts >= MAX_ATTEMPTS else DeliveryState.RETRYING)
    )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts,
        status_code=status_code,
        error=error,
        state=state,
        delivered_at=timezone.now() if done else None,
    )
    return state != DeliveryState.RETRYING
