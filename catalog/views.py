"""Server-rendered pages (django-htmx). Thin: they call selectors and services and render."""

from __future__ import annotations

import dataclasses
import io
import mimetypes
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from knox.auth import TokenAuthentication
from PIL import Image
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import IsAuthenticated

from catalog import drafts, plots, selectors, services
from catalog import population as population_maths
from catalog.exports import camtrap_dp, coco, darwin_core, wildlife_datasets
from catalog.forms import AnnotationForm, PopulationForm, SightingFilterForm, SightingForm
from catalog.models import Individual, IndividualStatus, Sex, Sighting, Species
from resight.http.params import parse_id
from resight.models import Project
from resight.permissions import Action, AnyUser, get_for, granted, projects_for, scope

MEDIA_VARIANTS = {"original", "preview", "thumbnail"}
CROP_MAX_SIDE = 480


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    projects = projects_for(user, Action.VIEW).select_related("organization")
    individuals = selectors.individuals_for(user)
    sightings = selectors.sightings_for(user)[:10]
    return render(
        request,
        "catalog/dashboard.html",
        {
            "projects": projects.annotate(n_sightings=Count("sightings", distinct=True)),
            "individual_count": individuals.count(),
            "recent_sightings": [(s, selectors.sighting_location(user, s)) for s in sightings],
        },
    )


@login_required
@require_GET
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_for(request.user, Project.objects.select_related("organization"), pk=pk)
    user = request.user
    sightings = selectors.sightings_for(user).filter(project=project)
    individuals = selectors.individuals_for(user).filter(project=project)
    species = Species.objects.filter(individuals__in=individuals).annotate(
        n=Count("individuals", distinct=True)
    )
    return render(
        request,
        "catalog/project_detail.html",
        {
            "project": project,
            "sighting_count": sightings.count(),
            "individual_count": individuals.count(),
            "species": species,
            "recent_sightings": [(s, selectors.sighting_location(user, s)) for s in sightings[:20]],
            "can_contribute": granted(user, project.pk, Action.CONTRIBUTE),
            "can_manage": granted(user, project.pk, Action.MANAGE),
            "can_export": granted(user, project.pk, Action.EXPORT),
            "agreements": project.sharing_agreements.valid().select_related("grantee")
            if granted(user, project.pk, Action.MANAGE)
            else [],
        },
    )


@login_required
@require_GET
def species_list(request: HttpRequest) -> HttpResponse:
    # Counts only what the user may see: species are shared, individuals are not.
    visible = scope(Individual.objects.all(), request.user, Action.VIEW)
    counts = dict(visible.values("species").annotate(n=Count("id")).values_list("species", "n"))
    species = Species.objects.order_by("common_name")
    return render(
        request,
        "catalog/species_list.html",
        {
            "species": [(s, counts.get(s.pk, 0)) for s in species],
        },
    )


@login_required
@require_GET
def individual_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    queryset = selectors.individual_filter(selectors.individuals_for(user), request.GET.dict())
    queryset = (
        selectors.with_portrait(user, queryset)
        .annotate(last_seen=Max("annotations__sighting__observed_at"))
        .order_by("project", "code")
    )
    page = Paginator(queryset, 30).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "params": request.GET.dict(),
        "querystring": request.GET.copy(),
        "projects": projects_for(user, Action.VIEW),
        "species": Species.objects.all(),
        "sexes": Sex.choices,
        "statuses": IndividualStatus.choices,
    }
    if request.htmx and request.htmx.target == "individual-results":  # type: ignore[attr-defined]
        return render(request, "catalog/_individual_results.html", context)
    return render(request, "catalog/individual_list.html", context)


@login_required
@require_GET
def sighting_list(request: HttpRequest) -> HttpResponse:
    """Every sighting the user may see, newest first, filtered (unidentified animals, species, dates, place,
    who recorded it, project); places the user sees blurred are neither shown nor searched."""
    user = request.user
    form = SightingFilterForm(request.GET or None, user=user)
    sightings = selectors.sightings_for(user).select_related("created_by")
    if form.is_valid():
        sightings = selectors.sighting_filter(sightings, user, form.cleaned_data)
    page = Paginator(sightings.order_by("-observed_at", "-pk"), 30).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "sightings": [(s, selectors.sighting_location(user, s)) for s in page],
        "querystring": request.GET.copy(),
    }
    if request.htmx and request.htmx.target == "sighting-results":  # type: ignore[attr-defined]
        return render(request, "catalog/_sighting_results.html", context)
    return render(request, "catalog/sighting_list.html", context)


@login_required
@require_GET
def individual_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    individual = get_for(user, selectors.individuals_for(user), pk=pk)
    sightings = selectors.sightings_for(user).filter(annotations__individual=individual).distinct()
    timeline = [(s, selectors.sighting_location(user, s)) for s in sightings.order_by("observed_at")]
    return render(
        request,
        "catalog/individual_detail.html",
        {
            "individual": individual,
            "gallery": selectors.gallery(user, individual),
            "timeline": timeline,
            "encounter_svg": plots.encounter_history([s.observed_at for s, _ in timeline]),
            "can_curate": granted(user, individual.project_id, Action.CURATE, {individual.species_id}),
            "map": _map_points(user, timeline),
        },
    )


def _map_points(user: AnyUser, timeline: list[tuple[Sighting, selectors.Location]]) -> dict[str, Any]:
    """What the map script draws: located sightings (blurred where the user may not know the place)."""
    return {
        "tiles": settings.RESIGHT_MAP_TILES_URL,
        "attribution": settings.RESIGHT_MAP_ATTRIBUTION,
        "points": [
            {
                "lat": loc.latitude,
                "lon": loc.longitude,
                "radius_m": loc.uncertainty_m,
                "label": f"{s.observed_at:%Y-%m-%d}" + (f" · {loc.name}" if loc.name else ""),
                "url": reverse("sighting-detail", args=[s.pk]),
            }
            for s, loc in timeline
            if loc.latitude is not None and loc.longitude is not None
        ],
    }


@dataclasses.dataclass
class PopulationSetup:
    form: PopulationForm
    species: Species | None = None
    sessions: list[selectors.Session] = dataclasses.field(default_factory=list)


def _population_setup(request: HttpRequest, project: Project, *, fallback: bool = True) -> PopulationSetup:
    """Read the species and sessions asked for; default to every identified day in two equal sessions."""
    user = request.user
    species_qs = Species.objects.filter(
        pk__in=selectors.annotations_for(user)
        .filter(media_asset__project=project, individual__isnull=False)
        .values("species")
    )
    params = request.GET.copy()
    if "species" not in params and (first := species_qs.first()) is not None:
        params["species"] = str(first.pk)
    params.setdefault("sessions", "2")
    form = PopulationForm(params, species=species_qs)
    if form.is_valid():
        data = form.cleaned_data
    elif not fallback:
        return PopulationSetup(form)
    else:
        # A mistake in the sessions shows the results of the defaults next to the error, not an empty page.
        default = PopulationForm(
            {"species": form.cleaned_data.get("species", params.get("species")), "sessions": "2"},
            species=species_qs,
        )
        if not default.is_valid():
            return PopulationSetup(form)
        data = default.cleaned_data
        form.defaults_shown = True  # type: ignore[attr-defined]  # the page says so
    species = data["species"]
    if data["boundaries"]:
        return PopulationSetup(form, species, selectors.sessions_between(data["boundaries"]))
    span = selectors.observed_days(user, project, species)
    start = data["start"] or (span[0] if span else None)
    end = data["end"] or (span[1] if span else None)
    if start is None or end is None:
        return PopulationSetup(form, species)
    return PopulationSetup(form, species, selectors.split_sessions(start, end, data["sessions"]))


@login_required
@require_GET
def population(request: HttpRequest, pk: int) -> HttpResponse:
    """Discovery curve, sightings per individual and abundance from capture histories of one species."""
    user = request.user
    project = get_for(user, Project.objects.select_related("organization"), pk=pk)
    setup = _population_setup(request, project)
    context: dict[str, Any] = {"project": project, "form": setup.form, "sessions": setup.sessions}
    if setup.species is not None:
        histories = selectors.capture_histories(user, project, setup.species, setup.sessions)
        counts = selectors.sightings_per_individual(user, project, setup.species)
        context |= {
            "species": setup.species,
            "histories": histories,
            "session_totals": [sum(h[i] for _, h in histories) for i in range(len(setup.sessions))],
            "estimates": population_maths.estimate([h for _, h in histories])
            if histories and len(setup.sessions) >= 2
            else [],
            "discovery_svg": plots.discovery_curve(selectors.discovery_curve(user, project, setup.species)),
            "histogram_svg": plots.sightings_histogram(counts),
            "can_export": granted(user, project.pk, Action.EXPORT),
            "querystring": request.GET.urlencode(),
        }
    return render(request, "catalog/population.html", context)


@login_required
@require_GET
def population_mark(request: HttpRequest, pk: int) -> HttpResponse:
    """The capture histories of the population page as a Program MARK .inp file (export right needed)."""
    user = request.user
    project = get_for(user, Project.objects.all(), Action.EXPORT, pk=pk)
    setup = _population_setup(request, project, fallback=False)  # a download is of what was asked, or none
    if setup.species is None or not setup.sessions:
        return HttpResponse("Choose a species with identified individuals and valid sessions.", status=400)
    histories = selectors.capture_histories(user, project, setup.species, setup.sessions)
    title = (
        f"{project.name}: {setup.species.scientific_name}; sessions "
        + "; ".join(s.label for s in setup.sessions)
        + f"; licence {project.licence}; rights holder {project.holder}"  # they travel with every export
    )
    body = population_maths.mark_inp([(i.code, h) for i, h in histories], title=title)
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    filename = f"{project.slug}-{setup.species.scientific_name.replace(' ', '_')}.inp"
    # Django quotes (or RFC 5987-encodes) the name, so nothing in a slug or species name adds parameters.
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


@login_required
@require_GET
def project_dwca(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's identified animals as a Darwin Core Archive for GBIF (export right needed; places as
    precise as the user may see them)."""
    project = get_for(request.user, Project.objects.all(), Action.EXPORT, pk=pk)
    if project.embargoed():
        # The archive is what a project publishes (to GBIF): nothing is published before the embargo day.
        return HttpResponse(
            f"{project.name} is embargoed until {project.embargo_until:%Y-%m-%d}: its Darwin Core Archive "
            "for publishing can be made from that day.",
            status=409,
            content_type="text/plain; charset=utf-8",
        )
    return _zip_download(darwin_core.archive(request.user, project), f"{project.slug}-dwca.zip")


@login_required
@require_GET
def project_wildlife_datasets(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's annotated photos in the wildlife-datasets layout (images/ and metadata.csv), which
    Bulk upload reads back (export right needed)."""
    project = get_for(request.user, Project.objects.all(), Action.EXPORT, pk=pk)
    body = wildlife_datasets.archive(request.user, project)
    return _zip_download(body, f"{project.slug}-wildlife-datasets.zip")


@login_required
@require_GET
def project_coco(request: HttpRequest, pk: int) -> HttpResponse:
    """The project's annotations as COCO (images/ and annotations.json) for training elsewhere; Bulk upload
    takes its annotations.json as the metadata file (export right needed)."""
    project = get_for(request.user, Project.objects.all(), Action.EXPORT, pk=pk)
    return _zip_download(coco.archive(request.user, project), f"{project.slug}-coco.zip")


@login_required
@require_GET
def project_camtrap_dp(request: HttpRequest, pk: int) -> HttpResponse:
    """The project as a Camtrap DP 1.0 package (export right); Bulk upload takes such a zip back."""
    project = get_for(request.user, Project.objects.all(), Action.EXPORT, pk=pk)
    return _zip_download(camtrap_dp.archive(request.user, project), f"{project.slug}-camtrap-dp.zip")


def _zip_download(body: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type="application/zip")
    # Django quotes (or RFC 5987-encodes) the name, so nothing in a slug adds parameters.
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


@login_required
@require_GET
def individual_gallery(request: HttpRequest, pk: int) -> HttpResponse:
    """The gallery alone (grouped by body part): the review page shows the candidate's with it."""
    user = request.user
    individual = get_for(user, selectors.individuals_for(user), pk=pk)
    context = {"individual": individual, "gallery": selectors.gallery(user, individual)}
    return render(request, "catalog/_gallery.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def sighting_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    initial = {}
    if (project_id := parse_id(request.GET.get("project"))) is not None:
        initial["project"] = project_id
    form = SightingForm(request.POST or None, request.FILES or None, user=user, initial=initial)
    if request.method != "POST":
        return render(request, "catalog/sighting_form.html", _form_context(form, ""))
    sent = [services.PhotoUpload(f.name or "photo", f) for f in request.FILES.getlist("photos")]
    kept = request.POST.get("kept_photos", "")
    photos = sent or drafts.uploads(user, kept)  # none sent this time: those kept from an earlier try
    if form.is_valid():
        data = form.cleaned_data
        warnings = [] if data["confirm"] else form.warnings()
        try:
            if not photos:
                raise ValidationError({"photos": ["Add at least one photo."]})
            if warnings:
                raise ValidationError({"confirm": warnings})
            sighting = _create_sighting(user, data, photos)
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            drafts.discard(user, kept)
            return redirect(_after_create(sighting, data))
    if sent and "photos" not in form.errors:
        # The user corrects a field, not the photos: they are kept for the next try (a refused photo
        # keeps none: a rejected upload leaves no file).
        kept = drafts.keep(user, sent)
    return render(request, "catalog/sighting_form.html", _form_context(form, kept), status=400)


def _form_context(form: SightingForm, kept: str) -> dict[str, Any]:
    user = form.user
    return {
        "form": form,
        "kept": kept,
        "kept_names": drafts.names(user, kept),
        # The place picker's map (static/js/map.js): tiles as configured, the fields it fills.
        "map_settings": {
            "tiles": settings.RESIGHT_MAP_TILES_URL,
            "attribution": settings.RESIGHT_MAP_ATTRIBUTION,
            "points": [],
            "pick": {"element": "place-map", "lat": "id_latitude", "lon": "id_longitude"},
        },
    }


def _create_sighting(user: AnyUser, data: dict[str, Any], photos: list[services.PhotoUpload]) -> Sighting:
    species, crops = data["species"], data["photos_are_crops"]
    viewpoint = data["viewpoint"] or "unknown"
    if species is not None:
        services.check_annotation_vocabulary(species, viewpoint, data["body_part"])
    return services.sighting_create(
        actor=user,
        project=data["project"],
        data=services.SightingData.from_mapping(data),
        photos=photos,
        # Whole-photo boxes only for photos cropped to the animal: otherwise the background is matched
        # too, so the next page asks for the animal's box (one drag) first.
        species=species if crops else None,
        viewpoint=viewpoint,
        body_part=data["body_part"],
        photos_are_crops=crops,
    )


def _after_create(sighting: Sighting, data: dict[str, Any]) -> str:
    url = reverse("sighting-detail", args=[sighting.pk])
    species = data["species"]
    if species is not None and not data["photos_are_crops"]:
        marking = {
            "species": species.pk,
            "viewpoint": data["viewpoint"] or "unknown",
            "body_part": data["body_part"],
        }
        url += "?" + urlencode(marking) + "#annotate"
    return url


def _attach_errors(form: forms.BaseForm, exc: ValidationError) -> None:
    for field, messages in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


@login_required
@require_GET
def sighting_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_sighting(request, pk, annotation_form=None)


@login_required
@require_POST
def annotation_create(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    sighting = get_for(user, selectors.sightings_for(user), pk=pk)
    form = AnnotationForm(request.POST, sighting=sighting)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.annotation_create(
                actor=user,
                media_asset=data["media_asset"],
                species=data["species"],
                box=(data["x"], data["y"], data["width"], data["height"]),
                viewpoint=data["viewpoint"],
                body_part=data["body_part"],
            )
        except ValidationError as exc:
            _attach_errors(form, exc)
        else:
            url = reverse("sighting-detail", args=[sighting.pk])
            if request.POST.get("marking"):  # more photos to mark with the same species: keep the mode
                marking = {"species": data["species"].pk, "viewpoint": data["viewpoint"]}
                url += "?" + urlencode({**marking, "body_part": data["body_part"]}) + "#annotate"
            return redirect(url)
    return _render_sighting(request, pk, annotation_form=form, status=400)


def _render_sighting(
    request: HttpRequest, pk: int, annotation_form: AnnotationForm | None, status: int = 200
) -> HttpResponse:
    user = request.user
    sighting = get_for(user, selectors.sightings_for(user), pk=pk)
    assets = list(selectors.media_assets_for(user).filter(sighting=sighting))
    for asset in assets:
        asset.open_proposals = selectors.open_proposals(asset)  # type: ignore[attr-defined]
        # The original carries the EXIF position: no link where it would be refused.
        asset.original_allowed = not selectors.photo_location_blurred(user, asset)  # type: ignore[attr-defined]
    can_contribute = granted(user, sighting.project_id, Action.CONTRIBUTE)
    # Coming from New sighting with a species: the form is ready, and one drag on a photo saves the box.
    marking = {k: request.GET[k] for k in ("species", "viewpoint", "body_part") if request.GET.get(k)}
    return render(
        request,
        "catalog/sighting_detail.html",
        {
            "sighting": sighting,
            "location": selectors.sighting_location(user, sighting),
            "assets": assets,
            "can_contribute": can_contribute,
            "annotation_form": annotation_form or AnnotationForm(sighting=sighting, initial=marking),
            "unmarked": can_contribute and any(not a.annotations.all() for a in assets),
            "marking": bool(marking),
            # With a detector configured, photos whose boxes are still being proposed are polled for.
            "detecting": bool(settings.RESIGHT_DETECTOR) and any(not a.proposals_by for a in assets),
        },
        status=status,
    )


@extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
@api_view(["GET"])
@authentication_classes([TokenAuthentication, SessionAuthentication])
@permission_classes([IsAuthenticated])
def media_file(request: HttpRequest, pk: int, variant: str) -> FileResponse:
    """Every photo byte goes through here, so the policy covers media as it covers pages and the API.

    A DRF view so that API clients fetch photos with their token as browsers do with their session."""
    if variant not in MEDIA_VARIANTS:
        raise Http404("No such variant.")
    user = request.user
    asset = get_for(user, selectors.media_assets_for(user), pk=pk)
    if variant == "original" and selectors.photo_location_blurred(user, asset):
        # Originals keep their EXIF GPS; renditions are re-encoded without it.
        raise PermissionDenied("The original carries the precise place of a sensitive species.")
    field = {"original": asset.file, "preview": asset.preview, "thumbnail": asset.thumbnail}[variant]
    content_type = mimetypes.guess_type(str(field.name))[0] or "application/octet-stream"
    response = FileResponse(field.open("rb"), content_type=content_type)
    # The uploader chose this name: Django escapes quotes and encodes anything else (CR/LF, non-ASCII) as
    # filename*=utf-8'', so a crafted name cannot add parameters or headers.
    if variant == "original" and (disposition := content_disposition_header(False, asset.original_filename)):
        response["Content-Disposition"] = disposition
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY})
@api_view(["GET"])
@authentication_classes([TokenAuthentication, SessionAuthentication])
@permission_classes([IsAuthenticated])
def annotation_crop(request: HttpRequest, pk: int) -> HttpResponse:
    """The annotation's box cut from the display rendition: what curators compare side by side."""
    user = request.user
    annotation = get_for(user, selectors.annotations_for(user), pk=pk)
    asset = annotation.media_asset
    with asset.preview.open("rb") as f, Image.open(f) as preview:
        scale = preview.width / asset.width
        x, y, w, h = (round(v * scale) for v in annotation.box)
        region = preview.convert("RGB").crop((x, y, x + max(w, 1), y + max(h, 1)))
    region.thumbnail((CROP_MAX_SIDE, CROP_MAX_SIDE))
    out = io.BytesIO()
    region.save(out, format="JPEG", quality=88)
    response = HttpResponse(out.getvalue(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=600"
    return response
