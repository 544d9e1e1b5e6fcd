"""The audit log records writes and is append-only in the database itself."""

import pytest
from django.db import DatabaseError, transaction

from catalog import services
from resight.models import AuditEvent
from tests.conftest import World


def test_writes_are_logged_with_what_changed(world: World) -> None:
    services.individual_update(
        actor=world.users["curator"],
        individual=world.leopard_individual,
        changes={"name": "Bahati", "notes": "scar on left ear"},
    )
    event = AuditEvent.objects.filter(action="individual.update").latest("id")
    assert event.actor_name == "curator" and event.project_id == world.project.pk
    assert event.changes == {"name": ["", "Bahati"], "notes": ["", "scar on left ear"]}


def test_audit_rows_cannot_be_changed_or_deleted(world: World) -> None:
    event = AuditEvent.objects.first()
    assert event is not None
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == event.action
