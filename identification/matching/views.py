"""Pages of matching: start a match job for an annotation, watch it (htmx polling), and read its ranked
candidates with the side-by-side comparison."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors as catalog_selectors
from catalog.models import Annotation
from identification.curation import selectors as curation_selectors
from identification.matching import selectors, services
from identification.models import MatchJob
from resight.permissions import Action, can, get_for


@login_required
@require_POST
def match_start(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = get_for(
        request.user, catalog_selectors.annotations_for(request.user), Action.CONTRIBUTE, pk=pk
    )
    job = services.match_job_start(actor=request.user, annotation=annotation)
    return redirect("match-job", pk=job.pk)


@login_required
@require_GET
def match_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_for(request.user, selectors.jobs_for(request.user), pk=pk)
    rows = selectors.candidates_of(request.user, job) if job.is_final else []
    can_curate = can(request.user, job.annotation, Action.CURATE)
    context = {
        "job": job,
        "rows": rows,
        "compare": _compare_data(job, rows, full_resolution=can_curate),
        "can_curate": can_curate,
        "decisions": curation_selectors.decisions_on(job.annotation)[:10],
        "queue": request.GET.get("queue", ""),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "identification/_job.html", context)
    return render(request, "identification/job.html", context)


def _photo(annotation: Annotation, full_resolution: bool) -> dict[str, object]:
    asset = annotation.media_asset
    # Originals can carry precise EXIF positions: curators get them, others the (stripped) display rendition.
    variant = "original" if full_resolution else "preview"
    return {
        "src": reverse("media-file", args=[asset.pk, variant]),
        "width": asset.width,
        "height": asset.height,
        "box": list(annotation.box),
    }


def _compare_data(
    job: MatchJob, rows: list[selectors.CandidateRow], full_resolution: bool
) -> dict[str, object]:
    """What the side-by-side comparison draws: the query, and each candidate the user may see with the
    verified keypoint matches between them (photo pixels)."""
    return {
        "query": _photo(job.annotation, full_resolution),
        "candidates": [
            _photo(row.candidate.annotation, full_resolution)
            | {
                "rank": row.candidate.rank,
                "code": row.candidate.individual.code,
                "pairs": row.candidate.keypoint_pairs,
                "gallery": reverse("individual-gallery", args=[row.candidate.individual_id]),
            }
            for row in rows
            if row.viewable
        ],
    }
