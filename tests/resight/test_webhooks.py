"""Webhooks against a real HTTP receiver on this machine: an organisation admin registers one (its secret
shown once; private addresses refused unless the operator allows them); a match job, a confirmed identity
and an imported upload each POST a signed JSON message; a failing endpoint is retried and given up after the
last attempt; a delivery sent twice reaches the receiver once; every attempt is in the log."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from catalog.bulk import services as bulk
from identification.curation import decisions
from resight import webhooks
from resight.models import AuditEvent, DeliveryState, Webhook, WebhookDelivery
from tests.conftest import Catalogue, World, photo_bytes
from tests.identification.test_decisions import done_job
from tests.worker import wait_for


class Receiver:
    """An HTTP endpoint recording what it is sent, answering with the given status codes in turn."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.RESIGHT_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver runs on this machine
    r = Receiver()
    yield r
    r.server.shutdown()


def register(world: World, url: str, events: list[str]) -> tuple[Any, str]:
    client = Client()
    client.force_login(world.users["admin"])
    data = {"organization": world.project.organization_id, "url": url, "events": events}
    page = client.post("/webhooks/", data)
    found = re.search(
        r'<output id="webhook-secret" class="secret">([0-9a-f]+)</output>', page.content.decode()
    )
    return page, found.group(1) if found else ""


def deliver_all() -> None:
    for delivery in WebhookDelivery.objects.filter(state=DeliveryState.PENDING).order_by("pk"):
        webhooks.attempt(delivery.pk)


def test_events_arrive_signed_and_logged(catalogue: Catalogue, receiver: Receiver) -> None:
    world = catalogue.world
    page, secret = register(world, receiver.url, ["job.finished", "identity.confirmed", "import.done"])
    assert page.status_code == 200 and len(secret) == 64
    assert secret not in Client().get("/webhooks/").content.decode()  # (signed out) and never again:
    admin = Client()
    admin.force_login(world.users["admin"])
    assert secret not in admin.get("/webhooks/").content.decode()

    job = done_job(catalogue, 1, seed=8800)  # announce() emits job.finished
    decisions.decide(actor=world.users["curator"], job=job, kind="confirm", candidate_rank=1)
    batch = bulk.batch_create(
        actor=world.users["curator"],
        project=world.project,
        species=world.leopard,
        default_time=world.sighting.observed_at,
    )
    bulk.batch_add_photo(
        actor=world.users["curator"], batch=batch, name="a.jpg", stream=io.BytesIO(photo_bytes(91))
    )
    bulk.batch_check(actor=world.users["curator"], batch=batch, inline=True)
    bulk.batch_import(actor=world.users["curator"], batch=batch, inline=True)
    deliver_all()

    events = [headers["X-Resight-Event"] for headers, _ in receiver.received]
    assert events == ["job.finished", "identity.confirmed", "import.done"]
    for headers, body in receiver.received:
        want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Resight-Signature"], want)
        message = json.loads(body)
        assert message["project"]["name"] == "Big Cats" and message["delivery"] == int(
            headers["X-Resight-Delivery"]
        )
    confirmed = json.loads(receiver.received[1][1])
    assert confirmed["identity"]["individual"]["code"] == job.candidates.get(rank=1).individual.code
    assert json.loads(receiver.received[2][1])["upload"]["imported"] == 1
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {DeliveryState.DELIVERED}
    log = admin.get("/webhooks/").content.decode()
    assert "identity.confirmed" in log and "Delivered" in log
    assert AuditEvent.objects.filter(action="webhook.create").count() == 1


def test_a_failing_endpoint_is_retried_then_given_up_and_a_repeat_sends_nothing(
    world: World, receiver: Receiver
) -> None:
    register(world, receiver.url, ["import.done"])
    hook = Webhook.objects.get()
    receiver.statuses = [500] * webhooks.MAX_ATTEMPTS
    webhooks.emit("import.done", world.project, {"upload": {"id": 1}})
    delivery = WebhookDelivery.objects.get()
    outcomes = [webhooks.attempt(delivery.pk) for _ in range(webhooks.MAX_ATTEMPTS)]
    assert outcomes == [False] * (webhooks.MAX_ATTEMPTS - 1) + [True]
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == webhooks.MAX_ATTEMPTS
    assert delivery.status_code == 500 and delivery.error == "HTTP 500"
    assert webhooks.attempt(delivery.pk) and len(receiver.received) == webhooks.MAX_ATTEMPTS  # no more sent

    receiver.statuses = [500]
    webhooks.emit("import.done", world.project, {"upload": {"id": 2}})
    second = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert not webhooks.attempt(second.pk) and webhooks.attempt(second.pk)  # the retry gets through
    assert (
        webhooks.attempt(second.pk) and len(receiver.received) == webhooks.MAX_ATTEMPTS + 2
    )  # delivered once
    assert hook.deliveries.filter(state=DeliveryState.DELIVERED).count() == 1


def test_only_admins_register_and_private_addresses_are_refused(world: World, settings) -> None:
    curator = Client()
    curator.force_login(world.users["curator"])
    data = {
        "organization": world.project.organization_id,
        "url": "https://example.org/h",
        "events": ["import.done"],
    }
    assert "Only an organisation's admins" in curator.get("/webhooks/").content.decode()
    assert curator.post("/webhooks/", data).status_code == 400
    settings.RESIGHT_WEBHOOKS_ALLOW_PRIVATE = False
    for url in ("http://127.0.0.1:5432/", "http://10.0.0.8/hook", "http://[::1]/x", "ftp://example.org/"):
        page, secret = register(world, url, ["import.done"])
        assert page.status_code == 400 and not secret, url
    assert Webhook.objects.count() == 0


def test_the_worker_delivers_and_retries(world: World, worker, settings) -> None:
    """The real bulk worker: an endpoint that fails once is retried by Celery and gets the message."""
    settings.RESIGHT_WEBHOOKS_ALLOW_PRIVATE = True
    receiver = Receiver()
    receiver.statuses = [503]
    worker.queues = "bulk"
    worker.env = {"RESIGHT_WEBHOOKS_ALLOW_PRIVATE": "1", "RESIGHT_WEBHOOK_RETRY_S": "0.5"}
    worker.start()
    webhooks.webhook_create(
        actor=world.users["admin"],
        organization=world.project.organization,
        url=receiver.url,
        events=["import.done"],
    )
    with transaction.atomic():  # queued when the transaction commits, as in a request
        webhooks.emit("import.done", world.project, {"upload": {"id": 7}})
    delivery = WebhookDelivery.objects.get()
    assert wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).state == DeliveryState.DELIVERED, 120)
    assert len(receiver.received) == 2  # the 503, then the retry
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 2
    receiver.server.shutdown()
