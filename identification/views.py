"""Pages: start a match job for an annotation, watch it (htmx polling), read the ranked candidates."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors as catalog_selectors
from identification import selectors, services
from resight.permissions import Action, get_for


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
    context = {"job": job, "rows": selectors.candidates_of(request.user, job) if job.is_final else []}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "identification/_job.html", context)
    return render(request, "identification/job.html", context)
