"""Writes to the platform layer (projects). Organisation and membership admin lives in the Django admin."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict

from resight import audit
from resight.models import Organization, Project
from resight.permissions import Action, AnyUser, forget_grants, require, require_org_admin


def project_create(*, actor: AnyUser, organization: Organization, **fields: Any) -> Project:
    require_org_admin(actor, organization)
    project = Project(organization=organization, **fields)
    project.full_clean()
    with transaction.atomic():
        project.save()
        audit.record(
            actor=actor,
            action="project.create",
            obj=project,
            project_id=project.pk,
            changes=audit.diff({}, model_to_dict(project)),
        )
    forget_grants(actor)
    return project


def project_update(*, actor: AnyUser, project: Project, changes: dict[str, Any]) -> Project:
    require(actor, project, Action.MANAGE)
    before = model_to_dict(project)
    for name, value in changes.items():
        setattr(project, name, value)
    project.full_clean()
    with transaction.atomic():
        project.save()
        audit.record(
            actor=actor,
            action="project.update",
            obj=project,
            project_id=project.pk,
            changes=audit.diff(before, model_to_dict(project)),
        )
    return project
