"""Writing the append-only audit log. Services call `record` inside their transaction."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models, transaction
from django.forms.models import model_to_dict

from resight.models import AuditEvent, Project
from resight.permissions import AnyUser, user_or_none

M = TypeVar("M", bound=models.Model)


def record(
    *,
    actor: AnyUser | None,
    action: str,
    obj: models.Model,
    project_id: int | None = None,
    changes: dict[str, Any] | None = None,
    object_id: str | None = None,
    object_repr: str | None = None,
) -> AuditEvent:
    """`object_id` and `object_repr` name an object whose key and text must not be logged (an API token's
    are its hash)."""
    user = user_or_none(actor)
    return AuditEvent.objects.create(
        actor_id=user.pk if user else None,
        actor_name=user.get_username() if user else "",
        action=action,
        object_type=obj._meta.label,
        object_id=object_id if object_id is not None else str(obj.pk),
        object_repr=(object_repr if object_repr is not None else str(obj))[:200],
        project_id=project_id,
        changes=changes or {},
    )


def save(
    *,
    actor: AnyUser | None,
    obj: M,
    action: str,
    changes: dict[str, Any] | None = None,
) -> M:
    """Apply `changes`, validate (full_clean), save and record what changed, in one transaction. The one
    write path of the simple create/update services; `changes=None` means `obj` is new. The event belongs to
    the object's project (a project's own events to itself, once it has an id)."""
    with transaction.atomic():
        before = {} if changes is None else stored_before(obj)
        for name, value in (changes or {}).items():
            setattr(obj, name, value)
        obj.full_clean()
        obj.save()
        project_id = obj.pk if isinstance(obj, Project) else getattr(obj, "project_id", None)
        record(
            actor=actor,
            action=action,
            obj=obj,
            project_id=project_id,
            changes=diff(before, model_to_dict(obj)),
        )
    return obj


def stored_before(obj: models.Model) -> dict[str, Any]:
    """The stored row of `obj` as a dict, locked until the transaction ends (call inside one): what the
    event calls "before" is what this change replaces, even when someone saved the object since the
    caller read it."""
    row = type(obj)._default_manager.select_for_update(of=("self",)).order_by().get(pk=obj.pk)
    return model_to_dict(row)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: [old, new]} for the fields that changed, JSON-safe."""
    return {k: [_jsonable(before.get(k)), _jsonable(v)] for k, v in after.items() if before.get(k) != v}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, models.Model):
        return value.pk
    return str(value)
