"""Pages: start a match job for an annotation, watch it (htmx polling), read the ranked candidates, decide on
them, and work through the review queue."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors as catalog_selectors
from identification import review, selectors, services
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
    context = {
        "job": job,
        "rows": selectors.candidates_of(request.user, job) if job.is_final else [],
        "can_curate": can(request.user, job.annotation, Action.CURATE),
        "decisions": selectors.decisions_on(job.annotation)[:10],
        "queue": request.GET.get("queue", ""),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "identification/_job.html", context)
    return render(request, "identification/job.html", context)


@login_required
@require_POST
def match_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """The buttons of the job page (and their keyboard shortcuts): plain form posts, so they work without
    JavaScript. From the review queue, a decision that settles the photo moves on to the next one."""
    job = get_for(request.user, selectors.jobs_for(request.user), Action.CURATE, pk=pk)
    rank = request.POST.get("candidate_rank", "")
    kind = request.POST.get("kind", "")
    try:
        if kind == "undo":
            decision = services.undo(actor=request.user, annotation=job.annotation)
        else:
            decision = services.decide(
                actor=request.user,
                job=job,
                kind=kind,
                candidate_rank=int(rank) if rank.isdigit() else None,
                new_code=request.POST.get("new_code", ""),
                note=request.POST.get("note", ""),
            )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("match-job", pk=job.pk)
    messages.success(
        request,
        decision.get_kind_display() + (f": {decision.individual}" if decision.individual_id else "") + ".",
    )
    queue = request.POST.get("queue", "")
    if queue and kind not in ("undo", "not_this_one"):
        return redirect(f"{reverse('review-next')}?project={'' if queue == 'all' else queue}")
    return redirect(f"{reverse('match-job', kwargs={'pk': job.pk})}" + (f"?queue={queue}" if queue else ""))


@login_required
@require_GET
def review_next(request: HttpRequest) -> HttpResponse:
    """The review queue: hands this curator the next annotation nobody else is reviewing."""
    project = request.GET.get("project", "")
    job = review.claim_next(request.user, int(project) if project.isdigit() else None)
    if job is None:
        return render(request, "identification/review_empty.html", {"project": project})
    return redirect(f"{reverse('match-job', kwargs={'pk': job.pk})}?queue={project or 'all'}")
