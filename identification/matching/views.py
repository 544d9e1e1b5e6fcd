"""Pages of matching: start a match job for an annotation (its page, where curators decide, is curation's)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from catalog import selectors as catalog_selectors
from identification.matching import services
from resight.permissions import Action, get_for


@login_required
@require_POST
def match_start(request: HttpRequest, pk: int) -> HttpResponse:
    annotation = get_for(
        request.user, catalog_selectors.annotations_for(request.user), Action.CONTRIBUTE, pk=pk
    )
    job = services.match_job_start(actor=request.user, annotation=annotation)
    return redirect("match-job", pk=job.pk)
