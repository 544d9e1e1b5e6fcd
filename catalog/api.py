"""REST endpoints of the catalog: species, individuals, sightings, media assets (multipart), annotations,
bulk upload batches."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import filters, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from catalog import selectors, services
from catalog.bulk import services as bulk
from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species, UploadBatch
from resight.http.filters import PolicyFilterBackend, PolicyFilterSet
from resight.http.params import IdFilter
from resight.http.parsers import JSONParser
from resight.http.rest import PolicyViewSet
from resight.permissions import Action, get_for, projects_for, scope


def _scope_related(serializer: serializers.Serializer[Any], **querysets: models.QuerySet[Any]) -> None:
    """Related-object fields only accept what the user can see, so an id never reveals another project."""
    for name, queryset in querysets.items():
        if name in serializer.fields:
            serializer.fields[name].queryset = queryset  # type: ignore[attr-defined]


class SpeciesSerializer(serializers.ModelSerializer[Species]):
    class Meta:
        model = Species
        fields = [
            "id",
            "common_name",
            "scientific_name",
            "id_method",
            "viewpoints",
            "body_parts",
            "locations_sensitive",
            "canonical_viewpoint",
            "separate_sides",
        ]


class SpeciesViewSet(PolicyViewSet):
    serializer_class = SpeciesSerializer
    search_fields = ["common_name", "scientific_name"]
    ordering_fields = ["common_name", "scientific_name"]

    def visible(self, user: Any) -> models.QuerySet[Species]:
        return Species.objects.all()  # shared reference data

    def get_object(self) -> Species:
        obj: Species = viewsets.GenericViewSet.get_object(self)
        return obj

    def create_object(self, data: dict[str, Any]) -> Species:
        return services.species_create(actor=self.request.user, **data)

    def update_object(self, instance: Species, changes: dict[str, Any]) -> Species:
        return services.species_update(actor=self.request.user, species=instance, changes=changes)


class IndividualSerializer(serializers.ModelSerializer[Individual]):
    annotation_count = serializers.IntegerField(read_only=True)
    sighting_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Individual
        fields = [
            "id",
            "project",
            "species",
            "code",
            "name",
            "sex",
            "life_stage",
            "notes",
            "status",
            "annotation_count",
            "sighting_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []  # uniqueness is checked by the service (model full_clean)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            _scope_related(self, project=projects_for(user, Action.VIEW))


class IndividualFilter(PolicyFilterSet):
    class Meta:
        model = Individual
        fields = ["project", "species", "sex", "life_stage", "status"]


class IndividualViewSet(PolicyViewSet):
    serializer_class = IndividualSerializer
    filterset_class = IndividualFilter
    search_fields = ["code", "name", "notes"]
    ordering_fields = ["code", "name", "created_at"]
    update_action = Action.CURATE

    def visible(self, user: Any) -> models.QuerySet[Individual]:
        return selectors.individuals_for(user).order_by("project", "code")

    def create_object(self, data: dict[str, Any]) -> Individual:
        return services.individual_create(actor=self.request.user, **data)

    def update_object(self, instance: Individual, changes: dict[str, Any]) -> Individual:
        for fixed in ("project", "species"):
            changes.pop(fixed, None)
        return services.individual_update(actor=self.request.user, individual=instance, changes=changes)


class SightingSerializer(serializers.ModelSerializer[Sighting]):
    location_blurred = serializers.SerializerMethodField()
    media_assets: serializers.PrimaryKeyRelatedField[MediaAsset] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )

    class Meta:
        model = Sighting
        fields = [
            "id",
            "project",
            *services.SIGHTING_FIELDS,
            "location_blurred",
            "media_assets",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            _scope_related(self, project=projects_for(user, Action.VIEW))

    @extend_schema_field(serializers.BooleanField())
    def get_location_blurred(self, sighting: Sighting) -> bool:
        return not selectors.location_is_precise(self.context["user"], sighting)

    def to_representation(self, instance: Sighting) -> dict[str, Any]:
        data = super().to_representation(instance)
        location = selectors.sighting_location(self.context["user"], instance)
        data.update(
            latitude=location.latitude,
            longitude=location.longitude,
            location_uncertainty_m=location.uncertainty_m,
            location_name=location.name,
        )
        return data


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC: ISO 8601 and Python allow UTC offsets up to ±23:59, PostgreSQL
    compares times with offsets up to ±15:59 only (`?observed_after=2026-01-01T00:00+18:00` was a 500). A
    time that leaves Python's range in UTC is invalid (400)."""

    def to_python(self, value: Any) -> dt.datetime | None:
        parsed: dt.datetime | None = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError as exc:  # e.g. 9999-12-31T23:00-12:00
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class SightingFilter(PolicyFilterSet):
    observed_after = UtcIsoDateTimeFilter(field_name="observed_at", lookup_expr="gte")
    observed_before = UtcIsoDateTimeFilter(field_name="observed_at", lookup_expr="lte")
    individual = IdFilter(field_name="annotations__individual", distinct=True)
    species = IdFilter(field_name="annotations__species", distinct=True)

    class Meta:
        model = Sighting
        fields = ["project"]


class SightingSearchFilter(filters.SearchFilter):
    """`?search=` over observer, notes and place name, through selectors.sighting_search: a place the
    user sees blurred is never matched (DRF's own search would let its name be probed letter by letter)."""

    def filter_queryset(
        self, request: Request, queryset: models.QuerySet[Any], view: Any
    ) -> models.QuerySet[Any]:
        text = " ".join(self.get_search_terms(request))
        return selectors.sighting_search(queryset, request.user, text) if text else queryset


class SightingViewSet(PolicyViewSet):
    serializer_class = SightingSerializer
    filterset_class = SightingFilter
    filter_backends = [PolicyFilterBackend, filters.OrderingFilter, SightingSearchFilter]
    search_fields = ["location_name", "observer", "notes"]  # for the schema; SightingSearchFilter searches
    ordering_fields = ["observed_at", "created_at"]

    def visible(self, user: Any) -> models.QuerySet[Sighting]:
        return selectors.sightings_for(user).prefetch_related("media_assets")

    def create_object(self, data: dict[str, Any]) -> Sighting:
        project = data.pop("project")
        return services.sighting_create(
            actor=self.request.user, project=project, data=services.SightingData.from_mapping(data)
        )

    def update_object(self, instance: Sighting, changes: dict[str, Any]) -> Sighting:
        changes.pop("project", None)
        return services.sighting_update(actor=self.request.user, sighting=instance, changes=changes)


class MediaAssetSerializer(serializers.ModelSerializer[MediaAsset]):
    file = serializers.FileField(write_only=True, help_text="The photo: JPEG, PNG, WebP or HEIC")
    urls = serializers.SerializerMethodField()

    class Meta:
        model = MediaAsset
        fields = [
            "id",
            "project",
            "sighting",
            "file",
            "urls",
            "original_filename",
            "image_format",
            "sha256",
            "size_bytes",
            "width",
            "height",
            "exif_taken_at",
            "exif_latitude",
            "exif_longitude",
            "uploaded_at",
        ]
        read_only_fields = [
            "original_filename",
            "image_format",
            "sha256",
            "size_bytes",
            "width",
            "height",
            "exif_taken_at",
            "exif_latitude",
            "exif_longitude",
            "uploaded_at",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            _scope_related(
                self, project=projects_for(user, Action.VIEW), sighting=selectors.sightings_for(user)
            )

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_urls(self, asset: MediaAsset) -> dict[str, str]:
        return {
            v: reverse("media-file", kwargs={"pk": asset.pk, "variant": v})
            for v in ("original", "preview", "thumbnail")
        }

    def to_representation(self, instance: MediaAsset) -> dict[str, Any]:
        data = super().to_representation(instance)
        if selectors.photo_location_blurred(self.context["user"], instance):
            data.update(exif_latitude=None, exif_longitude=None)
        return data


class MediaAssetViewSet(PolicyViewSet):
    """Upload photos (multipart) and read their metadata. Bytes are served by /media/<id>/<variant>/."""

    serializer_class = MediaAssetSerializer
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["project", "sighting", "sha256"]
    ordering_fields = ["uploaded_at"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[MediaAsset]:
        return selectors.media_assets_for(user)

    def create_object(self, data: dict[str, Any]) -> MediaAsset:
        upload = data["file"]
        return services.media_asset_create(
            actor=self.request.user,
            project=data["project"],
            sighting=data.get("sighting"),
            photo=services.PhotoUpload(upload.name or "photo", upload),
        )


class AnnotationSerializer(serializers.ModelSerializer[Annotation]):
    class Meta:
        model = Annotation
        fields = [
            "id",
            "media_asset",
            "sighting",
            "species",
            "x",
            "y",
            "width",
            "height",
            "viewpoint",
            "body_part",
            "individual",
            "quality",
            "cropped_photo",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["sighting", "created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            _scope_related(
                self, media_asset=selectors.media_assets_for(user), individual=selectors.individuals_for(user)
            )


class AnnotationViewSet(PolicyViewSet):
    serializer_class = AnnotationSerializer
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    # Which right an edit needs depends on what it changes (the box: contribute; only the identity:
    # curate, which a curate-only grantee has without contribute), so the service decides.
    update_action = Action.VIEW
    filterset_fields = ["media_asset", "sighting", "species", "individual", "viewpoint", "body_part"]
    ordering_fields = ["created_at"]

    def visible(self, user: Any) -> models.QuerySet[Annotation]:
        return selectors.annotations_for(user)

    def create_object(self, data: dict[str, Any]) -> Annotation:
        box = (data.pop("x"), data.pop("y"), data.pop("width"), data.pop("height"))
        return services.annotation_create(actor=self.request.user, box=box, **data)

    def update_object(self, instance: Annotation, changes: dict[str, Any]) -> Annotation:
        changes.pop("media_asset", None)
        box_fields = ("x", "y", "width", "height")
        if any(f in changes for f in box_fields):
            changes["box"] = tuple(changes.pop(f, getattr(instance, f)) for f in box_fields)
        return services.annotation_update(actor=self.request.user, annotation=instance, changes=changes)


class UploadBatchSerializer(serializers.ModelSerializer[UploadBatch]):
    csv_file = serializers.FileField(write_only=True, required=False, help_text="The metadata CSV")
    zip_file = serializers.FileField(write_only=True, required=False, help_text="A zip of photos (and CSV)")
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = UploadBatch
        fields = [
            "id",
            "project",
            "created_by",
            "state",
            "species",
            "viewpoint",
            "body_part",
            "default_time",
            "time_zone",
            "folders_name_individuals",
            "photos_are_crops",
            "csv_file",
            "zip_file",
            "total",
            "checked",
            "imported",
            "problems",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = ["state", "total", "checked", "imported", "problems", "error", "created_at"]
        read_only_fields += ["finished_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user := self.context.get("user"):
            _scope_related(self, project=projects_for(user, Action.CONTRIBUTE))


class BatchCsvSerializer(serializers.Serializer[Any]):
    csv_file = serializers.FileField(help_text="The metadata CSV, replacing the batch's")


class BatchPhotoSerializer(serializers.Serializer[Any]):
    file = serializers.FileField()
    path = serializers.CharField(required=False, help_text="Its path in the folder (default: the file name)")


class UploadBatchViewSet(PolicyViewSet):
    """Bulk upload: create a batch (defaults, CSV, zip), add photos one by one, check (dry run: `problems`
    lists every bad row), import; poll the batch for its state and counts."""

    serializer_class = UploadBatchSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_fields = ["project", "state"]
    http_method_names = ["get", "post", "head", "options"]

    def visible(self, user: Any) -> models.QuerySet[UploadBatch]:
        return scope(UploadBatch.objects.select_related("created_by"), user, Action.CONTRIBUTE)

    def create_object(self, data: dict[str, Any]) -> UploadBatch:
        return bulk.batch_create(
            actor=self.request.user,
            csv_file=data.pop("csv_file", None),
            zip_file=data.pop("zip_file", None),
            **data,
        )

    def _batch(self, pk: str | None) -> UploadBatch:
        return get_for(self.request.user, self.get_queryset(), Action.CONTRIBUTE, pk=pk)

    def _answer(self, batch: UploadBatch) -> Response:
        batch.refresh_from_db()
        return Response(UploadBatchSerializer(batch).data)

    @extend_schema(request=BatchPhotoSerializer, responses={200: UploadBatchSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def photos(self, request: Request, pk: str | None = None) -> Response:
        """Add one photo (sending one the batch has already is a no-op: resumable)."""
        batch = self._batch(pk)
        params = BatchPhotoSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["file"]
        name = params.validated_data.get("path") or upload.name or "photo"
        bulk.batch_add_photo(actor=request.user, batch=batch, name=name, stream=upload)
        return self._answer(batch)

    @extend_schema(request=BatchCsvSerializer, responses={200: UploadBatchSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def csv(self, request: Request, pk: str | None = None) -> Response:
        """Replace the metadata CSV (field `csv_file`); check again afterwards."""
        batch = self._batch(pk)
        params = BatchCsvSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        bulk.batch_replace_csv(actor=request.user, batch=batch, csv_file=params.validated_data["csv_file"])
        return self._answer(batch)

    @extend_schema(request=None, responses={200: UploadBatchSerializer})
    @action(detail=True, methods=["post"])
    def check(self, request: Request, pk: str | None = None) -> Response:
        """Start the dry run; poll until the state is `valid` or `invalid` (then read `problems`)."""
        bulk.batch_check(actor=request.user, batch=self._batch(pk))
        return self._answer(self._batch(pk))

    @extend_schema(request=None, responses={200: UploadBatchSerializer})
    @action(detail=True, methods=["post"], url_path="import")
    def start_import(self, request: Request, pk: str | None = None) -> Response:
        """Import a checked batch with no problems; poll until `done`."""
        bulk.batch_import(actor=request.user, batch=self._batch(pk))
        return self._answer(self._batch(pk))


ROUTES: list[tuple[str, type[PolicyViewSet], str]] = [
    ("species", SpeciesViewSet, "species"),
    ("individuals", IndividualViewSet, "individual"),
    ("sightings", SightingViewSet, "sighting"),
    ("media-assets", MediaAssetViewSet, "mediaasset"),
    ("annotations", AnnotationViewSet, "annotation"),
    ("upload-batches", UploadBatchViewSet, "uploadbatch"),
]
