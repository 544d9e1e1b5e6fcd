from typing import Any

from django.contrib import admin

from identification.models import Decision, EmbeddingSpace, MatchCandidate, MatchJob, SpeciesCalibration
from resight.admin import AuditedAdmin


class CandidateInline(admin.TabularInline):
    model = MatchCandidate
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "rank",
        "individual",
        "probability",
        "band",
        "global_score",
        "local_score",
        "match_count",
    )


@admin.register(MatchJob)
class MatchJobAdmin(AuditedAdmin):
    list_display = ["id", "annotation", "state", "attempts", "top_probability", "created_at", "finished_at"]
    list_filter = ["state"]
    readonly_fields = ["claimed_by", "lease_expires_at", "attempts", "started_at", "finished_at", "error"]
    raw_id_fields = ["annotation", "requested_by"]
    inlines = [CandidateInline]


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(AuditedAdmin):
    list_display = ["key", "dim", "is_active", "created_at"]


@admin.register(SpeciesCalibration)
class SpeciesCalibrationAdmin(AuditedAdmin):
    list_display = [
        "species",
        "space",
        "matcher",
        "pairs",
        "positives",
        "identified_annotations",
        "fitted_at",
    ]


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Read-only: the decision log is append-only (the database refuses updates and deletes)."""

    list_display = ["decided_at", "decided_by", "kind", "annotation", "individual", "candidate_rank"]
    list_filter = ["kind"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
