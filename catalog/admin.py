from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from catalog import services
from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species
from resight.admin import AuditedAdmin


@admin.register(Species)
class SpeciesAdmin(admin.ModelAdmin):
    list_display = [
        "common_name",
        "scientific_name",
        "id_method",
        "canonical_viewpoint",
        "locations_sensitive",
    ]
    search_fields = ["common_name", "scientific_name"]

    def save_model(self, request: HttpRequest, obj: Species, form: Any, change: bool) -> None:
        # Through the services, so the audit log and re-embedding after a matching setting change happen.
        if not change:
            obj.pk = services.species_create(actor=request.user, **form.cleaned_data).pk
            return
        current = Species.objects.get(pk=obj.pk)
        services.species_update(
            actor=request.user, species=current, changes={f: form.cleaned_data[f] for f in form.changed_data}
        )


@admin.register(Individual)
class IndividualAdmin(AuditedAdmin):
    list_display = ["code", "name", "species", "project", "sex", "life_stage", "status"]
    list_filter = ["project", "species", "sex", "status"]
    search_fields = ["code", "name", "notes"]


class AnnotationInline(admin.TabularInline):
    model = Annotation
    extra = 0
    fields = ["media_asset", "species", "x", "y", "width", "height", "viewpoint", "body_part", "individual"]
    raw_id_fields = ["media_asset", "individual"]


@admin.register(Sighting)
class SightingAdmin(AuditedAdmin):
    list_display = ["id", "project", "observed_at", "location_name", "observer"]
    list_filter = ["project"]
    date_hierarchy = "observed_at"
    inlines = [AnnotationInline]


@admin.register(MediaAsset)
class MediaAssetAdmin(AuditedAdmin):
    list_display = ["id", "original_filename", "project", "sighting", "width", "height", "uploaded_at"]
    list_filter = ["project", "image_format"]
    search_fields = ["original_filename", "sha256"]
    readonly_fields = [
        "sha256",
        "size_bytes",
        "width",
        "height",
        "exif_taken_at",
        "exif_latitude",
        "exif_longitude",
        "file",
        "preview",
        "thumbnail",
    ]
    raw_id_fields = ["sighting"]


@admin.register(Annotation)
class AnnotationAdmin(AuditedAdmin):
    list_display = ["id", "media_asset", "species", "viewpoint", "body_part", "individual"]
    list_filter = ["species", "viewpoint"]
    raw_id_fields = ["media_asset", "sighting", "individual"]
