"""What was seen: species, individuals, sightings (observation events), photos and the animals in them."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from catalog.validators import (
    EARLIEST_TIME,
    LATEST_STORABLE_TIME,
    no_nul,
    validate_finite,
    validate_observation_time,
    validate_time_zone,
    validate_uncertainty,
)
from resight.models import Project


def _time_in_storable_range(field: str, *, nullable: bool = False) -> Q:
    """The database's own guard: no stored time Python could not load back (see catalog.validators)."""
    cond = Q(**{f"{field}__gte": EARLIEST_TIME, f"{field}__lt": LATEST_STORABLE_TIME})
    return cond | Q(**{f"{field}__isnull": True}) if nullable else cond


class IdentificationMethod(models.TextChoices):
    GLOBAL = "global", "Global embedding"
    LOCAL = "local", "Local features"
    HYBRID = "hybrid", "Hybrid (global shortlist, local re-rank)"


class Species(models.Model):
    common_name = models.CharField(max_length=120)
    scientific_name = models.CharField(max_length=160, unique=True)
    id_method = models.CharField(
        "identification method",
        max_length=10,
        choices=IdentificationMethod.choices,
        default=IdentificationMethod.HYBRID,
    )
    viewpoints = models.JSONField(
        default=list, blank=True, help_text="Allowed viewpoints, e.g. left, right, front. Empty: any."
    )
    body_parts = models.JSONField(
        default=list, blank=True, help_text="Body parts annotated, e.g. flank, face, tail fluke. Empty: any."
    )
    locations_sensitive = models.BooleanField(
        default=False, help_text="Blur sighting locations for everyone without curate rights."
    )
    separate_sides = models.BooleanField(
        default=False,
        help_text="Retraining treats an individual's left and right sides as two identities (asymmetric "
        "patterns, e.g. zebra flanks).",
    )
    canonical_viewpoint = models.CharField(
        max_length=10,
        blank=True,
        choices=[("", "As photographed"), ("left", "Left"), ("right", "Right")],
        help_text="Orientation normalisation: mirror photos of the opposite side to this one before matching "
        "(for species whose two sides look alike, e.g. fins or flanks of symmetric patterns).",
    )

    class Meta:
        ordering = ["common_name"]
        verbose_name_plural = "species"

    def __str__(self) -> str:
        return f"{self.common_name} ({self.scientific_name})"


class Sex(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    FEMALE = "female", "Female"
    MALE = "male", "Male"


class LifeStage(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    ADULT = "adult", "Adult"
    SUBADULT = "subadult", "Subadult"
    JUVENILE = "juvenile", "Juvenile"


class IndividualStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    DECEASED = "deceased", "Deceased"
    MERGED = "merged", "Merged into another"


class Individual(models.Model):
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="individuals")
    species = models.ForeignKey(Species, on_delete=models.PROTECT, related_name="individuals")
    code = models.CharField(
        max_length=60, help_text="Catalogue code, unique in the project", validators=[no_nul]
    )
    name = models.CharField(max_length=120, blank=True, validators=[no_nul])
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    life_stage = models.CharField(max_length=10, choices=LifeStage.choices, default=LifeStage.UNKNOWN)
    notes = models.TextField(blank=True, validators=[no_nul])
    status = models.CharField(
        max_length=10, choices=IndividualStatus.choices, default=IndividualStatus.ACTIVE
    )
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged_from",
        help_text="Set while this individual is merged into another (identification.merging)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    policy_project_path = "project"
    policy_species_path = "species"
    policy_place_path = "annotations__sighting__"  # to its sighting's position

    class Meta:
        ordering = ["project", "code"]
        constraints = [
            models.UniqueConstraint(fields=["project", "code"], name="individual_code_unique_in_project"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}".strip()


class Sighting(models.Model):
    """One observation event: a time and a place. Several animals in it are several annotations."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="sightings")
    observed_at = models.DateTimeField(db_index=True, validators=[validate_observation_time])
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA zone the time was recorded in",
        validators=[validate_time_zone],
    )
    latitude = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_finite, MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.FloatField(
        null=True,
        blank=True,
        validators=[validate_finite, MinValueValidator(-180), MaxValueValidator(180)],
    )
    location_uncertainty_m = models.FloatField(
        "location uncertainty (m)", null=True, blank=True, validators=[validate_uncertainty]
    )
    location_name = models.CharField(max_length=200, blank=True, validators=[no_nul])
    observer = models.CharField(max_length=200, blank=True, validators=[no_nul])
    notes = models.TextField(blank=True, validators=[no_nul])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    policy_project_path = "project"
    policy_species_path = "annotations__species"
    policy_place_path = ""  # to its sighting's position

    class Meta:
        ordering = ["-observed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__isnull=True, longitude__isnull=True)
                | Q(latitude__gte=-90, latitude__lte=90, longitude__gte=-180, longitude__lte=180),
                name="sighting_point_complete_and_in_range",
            ),
            models.CheckConstraint(
                condition=_time_in_storable_range("observed_at"), name="sighting_time_storable"
            ),
        ]

    def __str__(self) -> str:
        # No place name here: str() ends up in titles and logs, and sensitive locations must not leak.
        return f"Sighting {self.pk} on {self.observed_at:%Y-%m-%d}"


def _original_path(asset: MediaAsset, filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"projects/{asset.project_id}/originals/{asset.sha256[:2]}/{asset.sha256}.{ext}"


def _rendition_path(asset: MediaAsset, filename: str) -> str:
    return f"projects/{asset.project_id}/renditions/{asset.sha256[:2]}/{filename}"


class MediaAsset(models.Model):
    """An uploaded photo. The original is kept untouched; renditions are oriented for display."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="media_assets")
    sighting = models.ForeignKey(
        Sighting, null=True, blank=True, on_delete=models.SET_NULL, related_name="media_assets"
    )
    file = models.FileField(upload_to=_original_path, max_length=300)
    preview = models.FileField(upload_to=_rendition_path, max_length=300)
    thumbnail = models.FileField(upload_to=_rendition_path, max_length=300)
    original_filename = models.CharField(max_length=255)
    image_format = models.CharField(max_length=10)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    width = models.PositiveIntegerField(help_text="Pixels, after EXIF orientation")
    height = models.PositiveIntegerField(help_text="Pixels, after EXIF orientation")
    exif_taken_at = models.DateTimeField(null=True, blank=True)
    exif_latitude = models.FloatField(null=True, blank=True)
    exif_longitude = models.FloatField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    proposals = models.JSONField(
        default=list,
        blank=True,
        help_text="Animal boxes proposed by the detector: [{box, label, confidence}]",
    )
    proposals_by = models.CharField(
        max_length=160, blank=True, help_text="The detector version that proposed them; empty: not run"
    )

    policy_project_path = "project"
    policy_species_path = "annotations__species"
    policy_place_path = "sighting__"  # to its sighting's position

    class Meta:
        ordering = ["sighting", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="asset_unique_content_in_project"),
            models.CheckConstraint(
                condition=_time_in_storable_range("exif_taken_at", nullable=True),
                name="asset_exif_time_storable",
            ),
        ]

    def __str__(self) -> str:
        return self.original_filename


class Viewpoint(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    LEFT = "left", "Left"
    RIGHT = "right", "Right"
    FRONT = "front", "Front"
    BACK = "back", "Back"
    TOP = "top", "Top"
    BOTTOM = "bottom", "Bottom"


class Quality(models.IntegerChoices):
    POOR = 1, "Poor"
    FAIR = 2, "Fair"
    GOOD = 3, "Good"
    EXCELLENT = 4, "Excellent"


class Annotation(models.Model):
    """One animal in one photo: where it is, what it is, and (once known) who it is."""

    media_asset = models.ForeignKey(MediaAsset, on_delete=models.CASCADE, related_name="annotations")
    sighting = models.ForeignKey(Sighting, on_delete=models.CASCADE, related_name="annotations")
    species = models.ForeignKey(Species, on_delete=models.PROTECT, related_name="annotations")
    x = models.PositiveIntegerField()
    y = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    mask = models.FileField(upload_to="masks/", null=True, blank=True, max_length=300)
    viewpoint = models.CharField(max_length=10, choices=Viewpoint.choices, default=Viewpoint.UNKNOWN)
    body_part = models.CharField(max_length=60, blank=True, validators=[no_nul])
    individual = models.ForeignKey(
        Individual, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations"
    )
    quality = models.PositiveSmallIntegerField(choices=Quality.choices, null=True, blank=True)
    cropped_photo = models.BooleanField(
        default=False,
        help_text="The photo is already cropped to the animal, so a box of the whole photo is tight (else a "
        "whole-photo box is a loose one: the background is compared too)",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    policy_project_path = "media_asset__project"
    policy_species_path = "species"
    policy_place_path = "sighting__"  # to its sighting's position

    class Meta:
        ordering = ["media_asset", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(width__gt=0, height__gt=0), name="annotation_box_not_empty"),
        ]

    def __str__(self) -> str:
        return f"Annotation {self.pk} ({self.species.common_name})"

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.width, self.height)

    @property
    def loose_box(self) -> bool:
        """A box of the whole photo of an uncropped photo: the verdict compares the background too."""
        asset = self.media_asset
        return not self.cropped_photo and self.box == (0, 0, asset.width, asset.height)

    def box_percent(self) -> dict[str, float]:
        """The box as percentages of the photo, for drawing over any rendition size."""
        w, h = self.media_asset.width, self.media_asset.height
        return {
            "left": 100 * self.x / w,
            "top": 100 * self.y / h,
            "width": 100 * self.width / w,
            "height": 100 * self.height / h,
        }


class BatchState(models.TextChoices):
    RECEIVING = "receiving", "Receiving files"
    VALIDATING = "validating", "Checking (dry run)"
    INVALID = "invalid", "Needs fixing"
    VALID = "valid", "Ready to import"
    IMPORTING = "importing", "Importing"
    MATCHING = "matching", "Starting matches"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


BATCH_WORKING_STATES = (BatchState.VALIDATING, BatchState.IMPORTING, BatchState.MATCHING)


def _staging_path(item: UploadItem, filename: str) -> str:
    return f"uploads/{item.batch_id}/{filename}"


def _batch_file_path(batch: UploadBatch, filename: str) -> str:
    return f"uploads/{batch.pk or 'new'}/{filename}"


class UploadBatch(models.Model):
    """Many photos (sent one by one, or in a zip) with an optional CSV of metadata: stored as they arrive,
    checked in full (dry run) before anything enters the catalogue, then imported by a worker, resumably.
    Matching starts once every photo of the batch has its annotation (catalog.bulk)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="upload_batches")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who last started the check or the import: the worker acts with their rights, and the "
        "catalogue's audit names them",
    )
    state = models.CharField(max_length=12, choices=BatchState.choices, default=BatchState.RECEIVING)
    # Defaults for photos the CSV says nothing about (or every photo, without a CSV).
    species = models.ForeignKey(Species, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    viewpoint = models.CharField(max_length=10, choices=Viewpoint.choices, default=Viewpoint.UNKNOWN)
    body_part = models.CharField(max_length=60, blank=True)
    default_time = models.DateTimeField(
        null=True,
        blank=True,
        help_text="For photos with no time at all",
        validators=[validate_observation_time],
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    folders_name_individuals = models.BooleanField(
        default=False,
        help_text="Photos in images/<individual>/… belong to that individual (catalogue import)",
    )
    photos_are_crops = models.BooleanField(
        default=False,
        help_text="The photos are already cropped to the animal (a catalogue of face or flank crops): rows "
        "without a box take the whole photo as a tight box",
    )
    csv = models.FileField(upload_to=_batch_file_path, null=True, blank=True, max_length=300)
    source_zip = models.FileField(upload_to=_batch_file_path, null=True, blank=True, max_length=300)
    total = models.PositiveIntegerField(default=0)
    checked = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="[{row, file, message}] of the dry run")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    policy_project_path = "project"
    policy_species_path = None

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=_time_in_storable_range("default_time", nullable=True),
                name="batch_default_time_storable",
            ),
        ]

    def __str__(self) -> str:
        return f"Upload {self.pk} ({self.get_state_display()})"

    @property
    def is_working(self) -> bool:
        return self.state in BATCH_WORKING_STATES

    @property
    def actor(self) -> User:
        """Whose rights the worker's check and import use."""
        return self.acting_user or self.created_by


class ItemState(models.TextChoices):
    RECEIVED = "received", "Received"
    IMPORTED = "imported", "Imported"


class UploadItem(models.Model):
    """One photo of a batch: its staged bytes until imported, the checked plan for it, and what it became."""

    batch = models.ForeignKey(UploadBatch, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=500, help_text="Path in the zip or folder, or the file name")
    file = models.FileField(upload_to=_staging_path, max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=ItemState.choices, default=ItemState.RECEIVED)
    plan = models.JSONField(default=dict, blank=True, help_text="The checked metadata to import it with")
    error = models.TextField(blank=True, help_text="What the last dry run found wrong")
    rejected = models.TextField(blank=True, help_text="Why the file could not be staged at all")
    sighting = models.ForeignKey(Sighting, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    policy_project_path = "batch__project"
    policy_species_path = None

    class Meta:
        ordering = ["batch", "name"]
        constraints = [models.UniqueConstraint(fields=["batch", "name"], name="one_item_per_name_in_batch")]

    def __str__(self) -> str:
        return self.name
