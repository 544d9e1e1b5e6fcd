"""REST endpoints of the platform layer: projects and sharing agreements. (The API's base classes are in
resight.http.rest; the router is assembled from every app's ROUTES in resight.conf.urls.)"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from resight import services, sharing
from resight.http.params import parse_id
from resight.http.rest import PolicyViewSet
from resight.models import Organization, Project, Right, SharingAgreement
from resight.permissions import Action, organizations_administered, projects_for


class ProjectSerializer(serializers.ModelSerializer[Project]):
    class Meta:
        model = Project
        fields = [
            "id",
            "organization",
            "name",
            "slug",
            "description",
            "time_zone",
            "licence",
            "rights_holder",
            "embargo_until",
            "terms_of_use",
            "created_at",
        ]
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


class SharingAgreementSerializer(serializers.ModelSerializer[SharingAgreement]):
    rights = serializers.ListField(child=serializers.ChoiceField(choices=Right.choices), min_length=1)
    species = serializers.PrimaryKeyRelatedField(
        many=True, queryset=sharing.SPECIES._default_manager.all(), required=False
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = SharingAgreement
        fields = [
            "id",
            "project",
            "grantee",
            "rights",
            "species",
            "expires_at",
            "region_south",
            "region_west",
            "region_north",
            "region_east",
            "status",
            "created_by",
            "created_at",
            "decided_by",
            "decided_at",
        ]
        read_only_fields = ["status", "created_at", "decided_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            # Proposals come from projects the user manages, to any organisation (the service refuses the
            # project's own).
            self.fields["project"].queryset = projects_for(user, Action.MANAGE)  # type: ignore[attr-defined]
            self.fields["grantee"].queryset = Organization.objects.all()  # type: ignore[attr-defined]


class SharingAgreementViewSet(PolicyViewSet):
    """Agreements either side of which is one of the user's organisations. POST proposes one (an admin of the
    project's organisation); the other side's admins accept or decline it; either side revokes it."""

    serializer_class = SharingAgreementSerializer
    filterset_fields = ["status", "project", "grantee"]
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[SharingAgreement]:
        return sharing.agreements_for(user).prefetch_related("species")

    def get_object(self) -> SharingAgreement:
        # Agreements are scoped by organisation, not by project grants: the services check each step.
        return get_object_or_404(self.get_queryset(), pk=parse_id(self.kwargs["pk"]))

    def create_object(self, data: dict[str, Any]) -> SharingAgreement:
        box = [data.pop(f"region_{side}", None) for side in ("south", "west", "north", "east")]
        if any(v is not None for v in box) and any(v is None for v in box):
            raise serializers.ValidationError(
                {"region": ["Give all four of region_south, _west, _north, _east."]}
            )
        region = None if box[0] is None else (box[0], box[1], box[2], box[3])
        return sharing.agreement_propose(actor=self.request.user, region=region, **data)

    def _settled(self, agreement: SharingAgreement) -> Response:
        return Response(self.get_serializer(self.as_read(agreement)).data)

    @extend_schema(request=None, responses={200: SharingAgreementSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        """The grantee's admin accepts a proposal: it grants its rights from now on."""
        return self._settled(sharing.agreement_accept(actor=request.user, agreement=self.get_object()))

    @extend_schema(request=None, responses={200: SharingAgreementSerializer})
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        """The grantee's admin declines a proposal."""
        return self._settled(sharing.agreement_decline(actor=request.user, agreement=self.get_object()))

    @extend_schema(request=None, responses={200: SharingAgreementSerializer})
    @action(detail=True, methods=["post"], url_path="accept-terms")
    def accept_terms(self, request: Request, pk: str | None = None) -> Response:
        """A member of the grantee accepts the project's current terms of use (for themselves): until then the
        agreement grants them nothing, when the project has terms."""
        agreement = self.get_object()
        sharing.terms_accept(actor=request.user, agreement=agreement)
        return self._settled(agreement)

    @extend_schema(request=None, responses={200: SharingAgreementSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """An admin of either side ends a proposal or an agreement."""
        return self._settled(sharing.agreement_revoke(actor=request.user, agreement=self.get_object()))


ROUTES: list[tuple[str, type[PolicyViewSet], str]] = [
    ("projects", ProjectViewSet, "project"),
    ("sharing-agreements", SharingAgreementViewSet, "sharing-agreement"),
]
