"""Reads from the catalog, scoped by the permission policy."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef, Prefetch, Q, QuerySet, Subquery

from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species
from resight.http.params import parse_id
from resight.models import Project
from resight.permissions import Action, AnyUser, scope

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


def blurred_sightings(user: AnyUser) -> QuerySet[Annotation, Any]:
    """The ids (`sighting_id`) of the sightings whose place `user` may know only blurred: those with an
    annotation of a sensitive species the user may not curate in that project. One rule for pages, the
    API, search, map points and match filters."""
    curated = scope(Annotation.objects.all(), user, Action.CURATE)
    hidden = Annotation.objects.filter(species__locations_sensitive=True).exclude(pk__in=curated)
    return hidden.values("sighting_id")


def sightings_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Sighting]:
    """The sightings `user` may see, each with `location_blurred` and only the annotations (animals) the
    user may see: a species-scoped grantee sees a shared sighting's other animals neither named nor
    coded."""
    return (
        scope(Sighting.objects.all(), user, action)
        .select_related("project")
        .annotate(location_blurred=Exists(blurred_sightings(user).filter(sighting_id=OuterRef("pk"))))
        .prefetch_related(Prefetch("annotations", queryset=annotations_for(user)))
    )


def sighting_search(queryset: QuerySet[Sighting], user: AnyUser, text: str) -> QuerySet[Sighting]:
    """Sightings whose observer, notes or place name contain every word of `text`; the place name only
    where `user` may know it (letter-by-letter probing would otherwise recover a blurred place)."""
    blurred = blurred_sightings(user)
    for word in text.split():
        queryset = queryset.filter(
            Q(observer__icontains=word)
            | Q(notes__icontains=word)
            | (Q(location_name__icontains=word) & ~Q(pk__in=blurred))
        )
    return queryset


def individuals_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Individual]:
    return (
        scope(Individual.objects.all(), user, action)
        .select_related("project", "species", "merged_into")
        .annotate(
            annotation_count=Count("annotations", distinct=True),
            sighting_count=Count("annotations__sighting", distinct=True),
        )
    )


def media_assets_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[MediaAsset]:
    """The photos `user` may see, each with only the annotations the user may see."""
    return (
        scope(MediaAsset.objects.all(), user, action)
        .select_related("project", "sighting")
        .annotate(
            location_blurred=Exists(blurred_sightings(user).filter(sighting_id=OuterRef("sighting_id")))
        )
        .prefetch_related(Prefetch("annotations", queryset=annotations_for(user)))
    )


def annotations_for(user: AnyUser, action: Action = Action.VIEW) -> QuerySet[Annotation]:
    return scope(Annotation.objects.all(), user, action).select_related(
        "media_asset", "species", "individual", "sighting"
    )


def photo_location_blurred(user: AnyUser, asset: MediaAsset) -> bool:
    """Whether the photo's sighting has a place `user` may know only blurred: then its EXIF position and
    its original (which carries it) are withheld too (read through media_assets_for: no query)."""
    blurred = getattr(asset, "location_blurred", None)
    if blurred is None:
        blurred = asset.sighting_id is not None and (
            blurred_sightings(user).filter(sighting_id=asset.sighting_id).exists()
        )
    return bool(blurred)


def location_is_precise(user: AnyUser, sighting: Sighting) -> bool:
    """Whether `user` may know where `sighting` was exactly (read through sightings_for: no query)."""
    blurred = getattr(sighting, "location_blurred", None)
    if blurred is None:
        blurred = blurred_sightings(user).filter(sighting_id=sighting.pk).exists()
    return not blurred


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
        if (pk := parse_id(params.get(field))) is not None:
            queryset = queryset.filter(**{f"{field}_id": pk})
    for field in ("sex", "status", "life_stage"):
        if value := params.get(field, ""):
            queryset = queryset.filter(**{field: value})
    return queryset


@dataclass(frozen=True)
class Session:
    """A capture session: sightings with start <= observed_at < end."""

    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        last_day = (self.end - dt.timedelta(microseconds=1)).date()
        return f"{self.start.date():%Y-%m-%d} to {last_day:%Y-%m-%d}"


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def split_sessions(start: dt.date, end: dt.date, count: int) -> list[Session]:
    """`count` equal sessions covering the days start..end (inclusive), in UTC."""
    begin = _midnight(start)
    step = (_midnight(end + dt.timedelta(days=1)) - begin) / count
    return [Session(begin + i * step, begin + (i + 1) * step) for i in range(count)]


def sessions_between(boundaries: list[dt.date]) -> list[Session]:
    """The sessions between consecutive dates of `boundaries`."""
    return [Session(_midnight(a), _midnight(b)) for a, b in itertools.pairwise(boundaries)]


def observed_days(user: AnyUser, project: Project, species: Species) -> tuple[dt.date, dt.date] | None:
    """The first and last day the species was identified in the project."""
    span = identified(user, project, species).aggregate(
        first=Min("sighting__observed_at"), last=Max("sighting__observed_at")
    )
    if span["first"] is None:
        return None
    return span["first"].astimezone(dt.UTC).date(), span["last"].astimezone(dt.UTC).date()


def identified(user: AnyUser, project: Project, species: Species) -> QuerySet[Annotation]:
    """The curated identifications of one species in one project that `user` may see."""
    return annotations_for(user).filter(
        media_asset__project=project, species=species, individual__isnull=False
    )


def capture_histories(
    user: AnyUser, project: Project, species: Species, sessions: list[Session]
) -> list[tuple[Individual, list[int]]]:
    """For each individual seen in any session: 1 where it was identified in that session, else 0."""
    encounters = identified(user, project, species).values_list("individual_id", "sighting__observed_at")
    caught: dict[int, set[int]] = {}
    for individual_id, observed_at in encounters:
        for index, session in enumerate(sessions):
            if session.start <= observed_at < session.end:
                caught.setdefault(individual_id, set()).add(index)
    individuals = Individual.objects.in_bulk(list(caught))
    return [
        (individuals[pk], [int(i in caught[pk]) for i in range(len(sessions))])
        for pk in sorted(caught, key=lambda pk: individuals[pk].code)
    ]


def discovery_curve(user: AnyUser, project: Project, species: Species) -> list[tuple[int, int]]:
    """(sightings so far, distinct individuals so far) after each sighting of the species, in time order:
    a curve that levels off says most of the population has been catalogued."""
    sightings = (
        scope(Sighting.objects.filter(project=project, annotations__species=species), user, Action.VIEW)
        .distinct()
        .order_by("observed_at", "pk")
        .values_list("pk", flat=True)
    )
    order = {pk: n for n, pk in enumerate(sightings)}
    first: dict[int, int] = {}
    for individual_id, sighting_id in identified(user, project, species).values_list(
        "individual_id", "sighting_id"
    ):
        position = order.get(sighting_id)
        if position is not None and position < first.get(individual_id, len(order)):
            first[individual_id] = position
    new_at = Counter(first.values())
    curve, total = [], 0
    for position in range(len(order)):
        total += new_at[position]
        curve.append((position + 1, total))
    return curve


def sightings_per_individual(user: AnyUser, project: Project, species: Species) -> list[int]:
    """How many distinct sightings each identified individual of the species has."""
    counts = (
        identified(user, project, species)
        .values("individual_id")
        .annotate(n=Count("sighting", distinct=True))
        .values_list("n", flat=True)
    )
    return sorted(counts)


def gallery(user: AnyUser, individual: Individual) -> dict[str, list[Annotation]]:
    """The individual's annotations `user` may see, grouped by body part, newest first within each."""
    annotations = (
        annotations_for(user)
        .filter(individual=individual)
        .select_related("sighting__project")
        .order_by("body_part", "-sighting__observed_at")
    )
    grouped: dict[str, list[Annotation]] = {}
    for annotation in annotations:
        grouped.setdefault(annotation.body_part or "unspecified", []).append(annotation)
    return grouped


def _iou(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union else 0.0


def open_proposals(asset: MediaAsset) -> list[dict[str, object]]:
    """The detector's boxes for the photo that no annotation covers yet (uses prefetched annotations)."""
    boxes = [a.box for a in asset.annotations.all()]
    return [p for p in asset.proposals if all(_iou(p["box"], b) < 0.5 for b in boxes)]


def with_portrait(user: AnyUser, individuals: QuerySet[Individual]) -> QuerySet[Individual]:
    """Each individual with `portrait`: its latest photo (annotation) the user may see, for lists."""
    latest = (
        annotations_for(user)
        .filter(individual=OuterRef("pk"))
        .order_by("-sighting__observed_at", "-pk")
        .values("pk")[:1]
    )
    return individuals.annotate(portrait=Subquery(latest))


def sighting_filter(
    sightings: QuerySet[Sighting], user: AnyUser, params: dict[str, Any]
) -> QuerySet[Sighting]:
    """The sightings index's filters (cleaned values of catalog.forms.SightingFilterForm)."""
    if params.get("unidentified"):
        # An animal nobody has identified yet, or photos nobody has annotated.
        waiting = annotations_for(user).filter(individual__isnull=True).values("sighting_id")
        sightings = sightings.filter(Q(pk__in=waiting) | Q(annotations__isnull=True)).distinct()
    if params.get("species"):
        sightings = sightings.filter(
            pk__in=annotations_for(user).filter(species=params["species"]).values("sighting_id")
        )
    if params.get("project"):
        sightings = sightings.filter(project=params["project"])
    if params.get("after"):
        sightings = sightings.filter(observed_at__date__gte=params["after"])
    if params.get("before"):
        sightings = sightings.filter(observed_at__date__lte=params["before"])
    if params.get("recorded_by"):
        sightings = sightings.filter(created_by__username__iexact=params["recorded_by"])
    if place := params.get("place"):
        # A place name the user sees blurred is no match (as in the API's search).
        sightings = sightings.filter(location_name__icontains=place).exclude(pk__in=blurred_sightings(user))
    return sightings
