"""REST endpoints: start a match job, poll it, read its candidates, decide; merge and split individuals."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors as catalog_selectors
from catalog.models import Annotation
from identification.curation import decisions, identities
from identification.curation import selectors as curation_selectors
from identification.matching import selectors as matching_selectors
from identification.matching import services as matching_services
from identification.models import (
    Decision,
    DecisionKind,
    IdentityChange,
    IdentityChangeKind,
    MatchCandidate,
    MatchJob,
)
from resight.http.params import MAX_ID
from resight.http.rest import PolicyViewSet
from resight.permissions import Action, get_for, scope


class CandidateSerializer(serializers.ModelSerializer[MatchCandidate]):
    # Both null for a candidate from a match-against-only agreement (see to_representation).
    individual_code = serializers.CharField(source="individual.code", read_only=True, allow_null=True)
    annotation: serializers.PrimaryKeyRelatedField[Annotation] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The individual's best-matching annotation"
    )
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
    # Null once the deciding user's account is deleted (the log keeps the decision).
    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, default=None, allow_null=True
    )

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
    candidate_individual = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        allow_null=True,
        help_text="The individual shown at candidate_rank: refused if the list was ranked again since",
    )
    same_as = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        allow_null=True,
        help_text="Confirm as the individual of this other, identified annotation of the same sighting",
    )
    with_photos = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        help_text="Unidentified annotations of the same sighting and species that get the same identity",
    )
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
        context["viewable_individuals"] = matching_selectors.viewable_individual_ids(
            context["user"], instance
        )
        return super().to_representation(instance)


class MatchJobViewSet(PolicyViewSet):
    """POST to start a job for an annotation; GET to poll its state and read ranked candidates."""

    serializer_class = MatchJobSerializer
    token_scopes = {"create": "match"}  # a personal token starts match jobs with the match scope
    filterset_fields = ["annotation", "state"]
    ordering_fields = ["created_at"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[MatchJob]:
        return matching_selectors.jobs_for(user).prefetch_related(
            "candidates__individual", "decisions__decided_by"
        )

    @extend_schema(request=DecideSerializer, responses={201: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def decide(self, request: Request, pk: str | None = None) -> Response:
        """Confirm a candidate, declare a new individual, reject a candidate, skip, or mark unidentifiable."""
        job = get_for(request.user, self.get_queryset(), Action.CURATE, pk=pk)
        params = DecideSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        decision = decisions.decide(actor=request.user, job=job, **params.validated_data)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: DecisionSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Revert the latest decision on the job's annotation."""
        job = get_for(request.user, self.get_queryset(), Action.CURATE, pk=pk)
        decision = decisions.undo(actor=request.user, annotation=job.annotation)
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)

    def create_object(self, data: dict[str, Any]) -> MatchJob:
        return matching_services.match_job_start(
            actor=self.request.user, annotation=data["annotation"], filters=data.get("filters")
        )


class IdentityChangeSerializer(serializers.ModelSerializer[IdentityChange]):
    # Null once the acting user's account is deleted (the log keeps the change).
    actor = serializers.CharField(source="actor.username", read_only=True, default=None, allow_null=True)
    undone = serializers.SerializerMethodField()

    class Meta:
        model = IdentityChange
        fields = [
            "id",
            "kind",
            "individual",
            "other",
            "annotation_ids",
            "previous_status",
            "undoes",
            "preview",
            "actor",
            "created_at",
            "undone",
        ]
        read_only_fields = fields

    def get_undone(self, instance: IdentityChange) -> bool:
        return IdentityChange.objects.filter(undoes=instance).exists()


class IdentityChangeRequest(serializers.Serializer[IdentityChange]):
    kind = serializers.ChoiceField(choices=[IdentityChangeKind.MERGE, IdentityChangeKind.SPLIT])
    individual = serializers.IntegerField(
        help_text="Merge: the individual merged away. Split: the one split."
    )
    target = serializers.IntegerField(required=False, help_text="Merge: the individual kept")
    annotations = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="Split: the annotations that leave"
    )
    new_code = serializers.CharField(required=False, allow_blank=True, max_length=60)
    dry_run = serializers.BooleanField(default=False, help_text="Only return the preview of consequences")


class IdentityChangeViewSet(PolicyViewSet):
    """Merges and splits of individuals: POST one (or its preview with dry_run), GET the log, undo one."""

    serializer_class = IdentityChangeSerializer
    filterset_fields = ["kind", "individual", "other"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[IdentityChange]:
        return scope(IdentityChange.objects.select_related("actor"), user, Action.VIEW)

    @extend_schema(request=IdentityChangeRequest, responses={201: IdentityChangeSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        params = IdentityChangeRequest(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        individuals = catalog_selectors.individuals_for(request.user)
        individual = get_for(request.user, individuals, Action.CURATE, pk=data["individual"])
        if data["kind"] == IdentityChangeKind.MERGE:
            if "target" not in data:
                raise serializers.ValidationError({"target": ["A merge needs the individual kept."]})
            target = get_for(request.user, individuals, Action.CURATE, pk=data["target"])
            if data["dry_run"]:
                return Response(curation_selectors.merge_preview(individual, target).as_json())
            change = identities.individual_merge(actor=request.user, source=individual, target=target)
        else:
            ids = data.get("annotations", [])
            if data["dry_run"]:
                return Response(curation_selectors.split_preview(individual, ids).as_json())
            change = identities.individual_split(
                actor=request.user,
                individual=individual,
                annotation_ids=ids,
                new_code=data.get("new_code", ""),
            )
        return Response(IdentityChangeSerializer(change).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: IdentityChangeSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        change = get_for(request.user, self.get_queryset(), Action.CURATE, pk=pk)
        undo = identities.identity_change_undo(actor=request.user, change=change)
        return Response(IdentityChangeSerializer(undo).data, status=status.HTTP_201_CREATED)


ROUTES: list[tuple[str, type[PolicyViewSet], str]] = [
    ("match-jobs", MatchJobViewSet, "matchjob"),
    ("identity-changes", IdentityChangeViewSet, "identitychange"),
]
