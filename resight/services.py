"""Writes to the platform layer (projects). Organisation and membership admin lives in the Django admin."""

from __future__ import annotations

from typing import Any

from resight import audit
from resight.models import Organization, Project
from resight.permissions import Action, AnyUser, forget_grants, require, require_org_admin


def project_create(*, actor: AnyUser, organization: Organization, **fields: Any) -> Project:
    require_org_admin(actor, organization)
    project = audit.save(
        actor=actor, obj=Project(organization=organization, **fields), action="project.create"
    )
    forget_grants(actor)  # the creator's cached rights predate the new project
    return project


def project_update(*, actor: AnyUser, project: Project, changes: dict[str, Any]) -> Project:
    require(actor, project, Action.MANAGE)
    return audit.save(actor=actor, obj=project, action="project.update", changes=changes)
