"""The REST base classes every app's API builds on: a viewset whose reads go through the permission policy
and whose writes go to the services, and the mapping of the services' errors to API answers. (Filters:
resight.http.filters.)"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from resight.permissions import Action, get_for


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Services raise Django's ValidationError; the API answers it with a 400 like DRF's own."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = ValidationError(detail)
    return drf_exception_handler(exc, context)


class PolicyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """List/retrieve through the policy's scoping; writes go to services, which check the action.

    Subclasses give `visible(user)` (a scoped queryset) and `create_object` / `update_object`."""

    update_action: Action = Action.CONTRIBUTE

    def visible(self, user: Any) -> models.QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> models.QuerySet[Any]:
        return self.visible(self.request.user)

    def get_object(self) -> Any:
        # get_for: 404 for what the user cannot see (no existence leak), 403 for what they cannot change.
        action = Action.VIEW if self.request.method in ("GET", "HEAD", "OPTIONS") else self.update_action
        return get_for(self.request.user, self.get_queryset(), action, pk=self.kwargs["pk"])

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        serializer.instance = self.as_read(self.create_object(dict(serializer.validated_data)))

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        serializer.instance = self.as_read(
            self.update_object(serializer.instance, dict(serializer.validated_data))
        )

    def as_read(self, obj: Any) -> Any:
        """The written object as a read returns it, through `visible()`: with what that queryset annotates
        (an individual's counts) and prefetches, so a write answers the same fields as a read."""
        return self.get_queryset().filter(pk=obj.pk).first() or obj

    def create_object(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def update_object(self, instance: Any, changes: dict[str, Any]) -> Any:
        raise NotImplementedError

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "user": self.request.user}
