"""Reads from the catalog, scoped by the permission policy."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, QuerySet

from catalog.models import Annotation, Individual, MediaAsset, Sighting
from resight.permissions import Action, AnyUser, granted, scope

# 0.1 degree is about 11 km of latitude: enough to hide a den or a nest, still useful for regional maps.
BLUR_DEGREES = 0.1
BLUR_UNCERTAINTY_M = 11_000.0


@dataclass(frozen=True)
class Location:
    latitude: float | None
    longitude: float | None
    uncertainty_m: float | None
    name: str
    blurred: bool


def sightings_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Sighting]:
    annotations = Annotation.objects.select_related("species", "individual")
    return (
        scope(Sighting.objects.all(), user, action)
        .select_related("project")
        .prefetch_related(Prefetch("annotations", queryset=annotations))
    )


def individuals_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Individual]:
    return (
        scope(Individual.objects.all(), user, action)
        .select_related("project", "species")
        .annotate(
            annotation_count=Count("annotations", distinct=True),
            sighting_count=Count("annotations__sighting", distinct=True),
        )
    )


def media_assets_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[MediaAsset]:
    return scope(MediaAsset.objects.all(), user, action).select_related("project", "sighting")


def annotations_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Annotation]:
    return scope(Annotation.objects.all(), user, action).select_related(
        "media_asset", "species", "individual", "sighting"
    )


def sensitive_species_ids(sighting: Sighting) -> set[int]:
    """Species of this sighting whose locations are sensitive (uses prefetched annotations)."""
    return {a.species_id for a in sighting.annotations.all() if a.species.locations_sensitive}


def location_is_precise(user: AnyUser, sighting: Sighting) -> bool:
    sensitive = sensitive_species_ids(sighting)
    return not sensitive or granted(user, sighting.project_id, Action.CURATE, sensitive)


def sighting_location(user: AnyUser, sighting: Sighting) -> Location:
    """Where the sighting was, as precisely as `user` may know it."""
    if location_is_precise(user, sighting):
        return Location(
            sighting.latitude,
            sighting.longitude,
            sighting.location_uncertainty_m,
            sighting.location_name,
            blurred=False,
        )
    lat, lon = sighting.latitude, sighting.longitude
    return Location(
        latitude=None if lat is None else round(round(lat / BLUR_DEGREES) * BLUR_DEGREES, 1),
        longitude=None if lon is None else round(round(lon / BLUR_DEGREES) * BLUR_DEGREES, 1),
        uncertainty_m=max(sighting.location_uncertainty_m or 0.0, BLUR_UNCERTAINTY_M)
        if lat is not None
        else None,
        name="",
        blurred=True,
    )


def individual_filter(queryset: QuerySet[Individual], params: dict[str, str]) -> QuerySet[Individual]:
    """Search and filters of the individuals list (page and API alike)."""
    if q := params.get("q", "").strip():
        queryset = queryset.filter(Q(code__icontains=q) | Q(name__icontains=q) | Q(notes__icontains=q))
    for field in ("project", "species"):
        if (value := params.get(field, "")).isdigit():
            queryset = queryset.filter(**{f"{field}_id": int(value)})
    for field in ("sex", "status", "life_stage"):
        if value := params.get(field, ""):
            queryset = queryset.filter(**{field: value})
    return queryset
