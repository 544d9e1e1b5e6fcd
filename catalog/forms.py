"""HTML forms. They only shape input; the services decide and check permissions."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from catalog import validators
from catalog.models import MediaAsset, Sighting, Species, UploadBatch, Viewpoint
from catalog.services import SIGHTING_FIELDS
from resight.models import Project
from resight.permissions import Action, AnyUser, projects_for


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (the pattern from Django's file-upload documentation)."""

    widget = MultipleFileInput

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Empty files pass here so the upload service reports them by name, like every other bad file.
        super().__init__(*args, allow_empty_file=True, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple) and data:
            return [single(d, initial) for d in data]
        if data and not isinstance(data, list | tuple):
            return [single(data, initial)]
        if self.required:  # a form sent without the browser's own check still needs a photo
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return []


class SightingForm(forms.ModelForm):
    observed_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text="Local time at the site. Leave empty to take it from the photos' EXIF.",
    )
    time_zone = forms.CharField(initial="UTC", help_text="IANA time zone, e.g. Africa/Nairobi")
    species = forms.ModelChoiceField(
        Species.objects.all(),
        required=False,
        help_text="The animal's species: next, one drag on each photo marks the animal, and it is matched.",
    )
    photos_are_crops = forms.BooleanField(
        required=False,
        label="The photos are already cropped to the animal",
        help_text="Then each whole photo is the animal's box and matching starts at once.",
    )
    viewpoint = forms.ChoiceField(choices=Viewpoint.choices, initial=Viewpoint.UNKNOWN, required=False)
    body_part = forms.CharField(required=False, max_length=60)
    photos = MultipleFileField(
        required=False,  # required unless photos were kept from an earlier try (the view checks)
        widget=MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/heic,image/heif"}),
        help_text="JPEG, PNG, WebP or HEIC. Location and time are read from EXIF when the fields are empty.",
    )

    class Meta:
        model = Sighting
        fields = ["project", *SIGHTING_FIELDS]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    confirm = forms.BooleanField(
        required=False,
        label="Save anyway",
        help_text="Some values look unusual (see the warnings): tick to save them as they are.",
    )
    kept_photos = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        projects = projects_for(user, Action.CONTRIBUTE)
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]
        if not self.is_bound and "project" not in self.initial and len(projects[:2]) == 1:
            self.initial["project"] = projects[0].pk  # the only project: chosen already
        project = projects.filter(pk=self.initial.get("project") or 0).first()
        if project is not None and "time_zone" not in self.initial:
            self.initial["time_zone"] = project.time_zone
        # For the page's script: each project's zone, each species' viewpoints and body parts.
        self.choices_data = {
            "zones": {p.pk: p.time_zone for p in projects},
            "species": {
                s.pk: {"viewpoints": s.viewpoints, "body_parts": s.body_parts} for s in Species.objects.all()
            },
        }

    def clean_time_zone(self) -> str:
        return _time_zone(self.cleaned_data["time_zone"])

    def clean(self) -> dict[str, Any]:
        return _in_zone(super().clean() or {}, "observed_at")

    def warnings(self) -> list[str]:
        """Values that are possible but unusual: the form asks to confirm them before saving."""
        data = self.cleaned_data
        found = []
        when = data.get("observed_at")
        if when is not None and when < timezone.now() - dt.timedelta(days=365 * 30):
            found.append(f"The sighting is from {when:%Y}: more than thirty years ago.")
        uncertainty = data.get("location_uncertainty_m")
        if uncertainty is not None and uncertainty > 10_000:
            found.append(
                f"A location uncertainty of {uncertainty / 1000:,.0f} km: the place is nearly unknown."
            )
        if data.get("latitude") == 0 and data.get("longitude") == 0:
            found.append("The position 0, 0 is in the Gulf of Guinea: usually a GPS that had no fix.")
        return found


def _time_zone(value: str) -> str:
    name = value.strip()
    validators.validate_time_zone(name)  # the model's rule, so the form says what the service would
    return name


def _in_zone(cleaned: dict[str, Any], field: str) -> dict[str, Any]:
    """The browser sends wall-clock time; it belongs to the zone the user named, not the server's."""
    value, tz_name = cleaned.get(field), cleaned.get("time_zone")
    if value is not None and tz_name:
        cleaned[field] = value.replace(tzinfo=None).replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
    return cleaned


class UploadBatchForm(forms.ModelForm):
    """A bulk upload: defaults for its photos, and optionally a CSV of metadata and a zip of photos (photos
    can also be added one by one on the upload's page)."""

    csv_file = forms.FileField(
        label="Metadata CSV",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        help_text="One row per photo: file, time, latitude, longitude, location_name, species, individual, "
        "viewpoint, body_part (and optionally sighting, x, y, width, height).",
    )
    zip_file = forms.FileField(
        label="Zip of photos",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
        help_text="May hold the CSV too (any .csv inside). Or add photos on the next page.",
    )
    default_time = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text="For photos with neither a time in the CSV nor in their EXIF.",
    )

    class Meta:
        model = UploadBatch
        fields = [
            "project",
            "species",
            "viewpoint",
            "body_part",
            "default_time",
            "time_zone",
            "folders_name_individuals",
            "photos_are_crops",
        ]

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for(user, Action.CONTRIBUTE)  # type: ignore[attr-defined]
        self.fields["species"].help_text = "For rows (or photos) that name none."

    def clean_time_zone(self) -> str:
        return _time_zone(self.cleaned_data["time_zone"])

    def clean_zip_file(self) -> Any:
        upload = self.cleaned_data.get("zip_file")
        if upload is not None and upload.size > settings.RESIGHT_MAX_ZIP_BYTES:
            raise forms.ValidationError("The zip is larger than the upload limit.")
        return upload

    def clean(self) -> dict[str, Any]:
        return _in_zone(super().clean() or {}, "default_time")


class AnnotationForm(forms.Form):
    """A box typed in pixels: works without JavaScript; the drawing tool fills the same fields."""

    media_asset = forms.ModelChoiceField(MediaAsset.objects.none(), label="Photo")
    species = forms.ModelChoiceField(Species.objects.all())
    x = forms.IntegerField(min_value=0)
    y = forms.IntegerField(min_value=0)
    width = forms.IntegerField(min_value=1)
    height = forms.IntegerField(min_value=1)
    viewpoint = forms.ChoiceField(choices=Viewpoint.choices, initial=Viewpoint.UNKNOWN)
    body_part = forms.CharField(required=False, max_length=60)

    def __init__(self, *args: Any, sighting: Sighting, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["media_asset"].queryset = sighting.media_assets.all()  # type: ignore[attr-defined]


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


class PopulationForm(forms.Form):
    """Which species and which capture sessions the population page estimates from."""

    species = forms.ModelChoiceField(queryset=Species.objects.none(), empty_label=None)
    start = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validators.validate_calendar_date],
    )
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Inclusive.",
        validators=[validators.validate_calendar_date],
    )
    sessions = forms.IntegerField(
        min_value=2, max_value=52, initial=2, help_text="Equal sessions between start and end."
    )
    boundaries = forms.CharField(
        required=False,
        help_text="Or your own sessions: dates between them, e.g. 2024-05-01, 2024-06-01, 2024-07-01 "
        "gives May and June.",
    )

    def __init__(self, *args: Any, species: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["species"].queryset = species  # type: ignore[attr-defined]

    def clean_boundaries(self) -> list[dt.date]:
        text = self.cleaned_data.get("boundaries", "")
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            dates = [dt.date.fromisoformat(p) for p in parts]
        except ValueError as exc:
            raise forms.ValidationError(
                "Dates as YYYY-MM-DD separated by commas (%(bad)s is none).",
                params={"bad": next(p for p in parts if not _is_iso_date(p))},
            ) from exc
        for day in dates:
            validators.validate_calendar_date(day)
        if dates and (len(dates) < 3 or any(b <= a for a, b in itertools.pairwise(dates))):
            raise forms.ValidationError("At least three increasing dates (two sessions).")
        return dates

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end comes before the start.")
        return data


class SightingFilterForm(forms.Form):
    """The sightings index's filters (catalog.selectors.sighting_filter)."""

    unidentified = forms.BooleanField(required=False, label="Unidentified animals only")
    species = forms.ModelChoiceField(Species.objects.all(), required=False, empty_label="All species")
    project = forms.ModelChoiceField(Project.objects.none(), required=False, empty_label="All projects")
    after = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validators.validate_calendar_date],
    )
    before = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validators.validate_calendar_date],
    )
    place = forms.CharField(required=False, max_length=200, label="Place name")
    recorded_by = forms.CharField(required=False, max_length=150, label="Recorded by (username)")

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for(user, Action.VIEW)  # type: ignore[attr-defined]
