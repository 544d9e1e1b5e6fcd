"""REST endpoints of the platform layer: projects. (The API's base classes are in resight.http.rest; the
router is assembled from every app's ROUTES in resight.conf.urls.)"""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from resight import services
from resight.http.rest import PolicyViewSet
from resight.models import Project
from resight.permissions import Action, organizations_administered, projects_for


class ProjectSerializer(serializers.ModelSerializer[Project]):
    class Meta:
        model = Project
        fields = ["id", "organization", "name", "slug", "description", "time_zone", "created_at"]
        read_only_fields = ["created_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            # New projects go to an organisation the user administers; existing ones never move.
            self.fields["organization"].queryset = organizations_administered(user)  # type: ignore[attr-defined]


class ProjectViewSet(PolicyViewSet):
    serializer_class = ProjectSerializer
    update_action = Action.MANAGE
    filterset_fields = ["organization"]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]

    def visible(self, user: Any) -> models.QuerySet[Project]:
        return projects_for(user, Action.VIEW)

    def create_object(self, data: dict[str, Any]) -> Project:
        return services.project_create(actor=self.request.user, **data)

    def update_object(self, instance: Project, changes: dict[str, Any]) -> Project:
        changes.pop("organization", None)  # a project does not move between organisations
        return services.project_update(actor=self.request.user, project=instance, changes=changes)


ROUTES: list[tuple[str, type[PolicyViewSet], str]] = [("projects", ProjectViewSet, "project")]
