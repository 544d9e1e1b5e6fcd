"""Pages of matching: start a match job for an annotation (its page, where curators decide, is curation's)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from catalog import selectors as catalog_selectors
from identification.matching import selectors, services
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
@require_POST
def match_widen(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's "search without this filter": the same annotation searched again, one filter fewer."""
    job = get_for(request.user, selectors.jobs_for(request.user), Action.CONTRIBUTE, pk=pk)
    try:
        widened = services.match_job_widen(
            actor=request.user, job=job, without=request.POST.get("without", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("match-job", pk=job.pk)
    return redirect("match-job", pk=widened.pk)
