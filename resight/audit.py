"""Writing the append-only audit log. Services call `record` inside their transaction."""

from __future__ import annotations

from typing import Any

from django.db import models

from resight.models import AuditEvent
from resight.permissions import AnyUser


def record(
    *,
    actor: AnyUser | None,
    action: str,
    obj: models.Model,
    project_id: int | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    authenticated = actor is not None and actor.is_authenticated
    return AuditEvent.objects.create(
        actor_id=actor.pk if authenticated else None,  # type: ignore[union-attr]
        actor_name=actor.get_username() if authenticated else "",  # type: ignore[union-attr]
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        project_id=project_id,
        changes=changes or {},
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: [old, new]} for the fields that changed, JSON-safe."""
    return {k: [_jsonable(before.get(k)), _jsonable(v)] for k, v in after.items() if before.get(k) != v}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return value.pk
    return str(value)
