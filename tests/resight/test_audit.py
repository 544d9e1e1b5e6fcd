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


def test_created_objects_are_logged_under_their_project(world: World) -> None:
    from resight import services as platform_services

    admin = world.users["admin"]
    project = platform_services.project_create(
        actor=admin, organization=world.project.organization, name="Coast", slug="coast"
    )
    curator = type(admin).objects.get(username="curator")  # a new request: its rights include the project
    individual = services.individual_create(actor=curator, project=project, species=world.zebra, code="Z9")
    created = AuditEvent.objects.get(action="project.create", object_id=str(project.pk))
    assert created.project_id == project.pk
    assert (
        AuditEvent.objects.get(action="individual.create", object_id=str(individual.pk)).project_id
        == project.pk
    )
    species = services.species_create(actor=_staff(admin), common_name="Lion", scientific_name="Panthera leo")
    assert AuditEvent.objects.get(action="species.create", object_id=str(species.pk)).project_id is None


def _staff(user):
    user.is_staff = True
    user.save()
    return user
