"""REST endpoints: start a match job, poll it, read its candidates."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors as catalog_selectors
from identification import selectors, services
from identification.models import Decision, DecisionKind, MatchCandidate, MatchJob
from resight.api import PolicyViewSet
from resight.permissions import Action, get_for


class CandidateSerializer(serializers.ModelSerializer[MatchCandidate]):
    individual_code = serializers.CharField(source="individual.code", read_only=True)
    project = serializers.IntegerField(source="individual.project_id", read_only=True)

    def to_representation(self, instance: MatchCandidate) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.individual_id not in self.context["viewable_individuals"]:
            # From a match-against-only agreement: the match is reported, the individual stays closed.
            data.update(individual_code=None, annotation=None)
        return data

    class Meta:
        model = MatchCandidate
        fields = [
            "rank",
            "individual",
            "individual_code",
            "project",
            "annotation",
            "global_score",
            "local_score",
            "match_count",
            "probability",
            "band",
            "model_key",
            "matcher_key",
        ]


class DecisionSerializer(serializers.ModelSerializer[Decision]):
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = Decision
        fields = [
            "id",
            "annotation",
            "job",
            "kind",
            "candidate_rank",
            "individual",
            "previous_individual_id",
            "shown",
            "model_key",
            "matcher_key",
            "note",
            "decided_by",
            "decided_at",
        ]
        read_only_fields = fields


class DecideSerializer(serializers.Serializer[Decision]):
    kind = serializers.ChoiceField(choices=[c for c in DecisionKind.choices if c[0] != DecisionKind.UNDO])
    candidate_rank = serializers.IntegerField(required=False, min_value=1, allow_null=True)
    new_code = serializers.CharField(required=False, allow_blank=True, max_length=60)
    note = serializers.CharField(required=False, allow_blank=True)


class MatchJobSerializer(serializers.ModelSerializer[MatchJob]):
    candidates = CandidateSerializer(many=True, read_only=True)
    decisions = DecisionSerializer(many=True, read_only=True)
    filters = serializers.DictField(required=False, help_text="days, radius_km, same_viewpoint")

    class Meta:
        model = MatchJob
        fields = [
            "id",
            "annotation",
            "state",
            "error",
            "probably_new",
            "space",
            "matcher",
            "shortlist_size",
            "project_ids",
            "filters",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "candidates",
            "decisions",
        ]
        read_only_fields = [
            "state",
            "error",
            "probably_new",
            "space",
            "matcher",
            "shortlist_size",
            "project_ids",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if (user := self.context.get("user")) and "annotation" in self.fields:
            self.fields["annotation"].queryset = catalog_selectors.annotations_for(user)  # type: ignore[attr-defined]

    def to_representation(self, instance: MatchJob) -> dict[str, Any]:
        # The nested candidates read this from the shared context, job by job.
        context: dict[str, Any] = self.context  # type: ignore[assignment]  # a plain dict at run time
        context["viewable_individuals"] = selectors.viewable_individual_ids(context["user"], instance)
        return super().to_representation(instance)

    def validate_filters(self, value: dict[str, Any]) -> dict[str, Any]:
        unknown = set(value) - {"days", "radius_km", "same_viewpoint"}
        if unknown:
            raise serializers.ValidationError(f"Unknown filters: {', '.join(sorted(unknown))}")
        for key in ("days", "radius_km"):
            if key in value and not (isinstance(value[key], int | float) and value[key] > 0):
                raise serializers.ValidationError(f"{key} must be a positive number")
        return value


class MatchJobViewSet(PolicyViewSet):
    """POST to start a job for an annotation; GET to poll its state and read ranked candidates."""

    serializer_class = MatchJobSerializer
    filterset_fields = ["annotation", "state"]
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[MatchJob]:
        return selectors.jobs_for(user).prefetch_related("candidates__individual", "decisions__decided_by")

    @extend_schema(request=DecideSerializer, responses={201: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str | None = None) -> Response:
        """Confirm a candidate, declare a new individual, reject a candidate, skip, or mark unidentifiable."""
        job = get_for(request.user, self.get_queryset(), Action.CURATE, pk=pk)
        params = DecideSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        decision = services.decide(actor=request.user, job=job, **params.validated_data)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Revert the latest decision on the job's annotation."""
        job = get_for(request.user, self.get_queryset(), Action.CURATE, pk=pk)
        decision = services.undo(actor=request.user, annotation=job.annotation)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)

    def create_object(self, data: dict[str, Any]) -> MatchJob:
        return services.match_job_start(
            actor=self.request.user, annotation=data["annotation"], filters=data.get("filters")
        )


ROUTES: list[tuple[str, type[PolicyViewSet], str]] = [("match-jobs", MatchJobViewSet, "matchjob")]
