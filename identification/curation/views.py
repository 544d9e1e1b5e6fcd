"""Pages of curation: a match job's page (its candidates, the side-by-side comparison, htmx polling until
it is done) and the decisions on it (buttons and keys), the review queue, merging and splitting
individuals (a preview first, undo afterwards)."""

from __future__ import annotations

from celery import current_app as celery_app
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import selectors as catalog_selectors
from catalog.models import Annotation, Individual, IndividualStatus
from identification.curation import decisions, identities, review, selectors
from identification.matching import freshness
from identification.matching import selectors as matching_selectors
from identification.models import IdentityChange, JobState, MatchJob
from resight.http.params import parse_id
from resight.permissions import Action, AnyUser, can, get_for


@login_required
@require_GET
def match_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_for(request.user, matching_selectors.jobs_for(request.user), pk=pk)
    rows = matching_selectors.candidates_of(request.user, job) if job.is_final else []
    can_curate = can(request.user, job.annotation, Action.CURATE)
    context = {
        "job": job,
        "rows": rows,
        "compare": _compare_data(request.user, job, rows),
        "can_curate": can_curate,
        "decisions": selectors.decisions_on(job.annotation)[:10],
        "searched": matching_selectors.searched(request.user, job),
        "can_contribute": can(request.user, job.annotation, Action.CONTRIBUTE),
        "queue": request.GET.get("queue", ""),
        # A list ranked before the catalogue changed says so, and the page polls until it is re-ranked.
        "stale_since": freshness.changed_since(job)
        if job.state == JobState.DONE and not job.annotation.individual_id
        else None,
        # One sighting, one animal unless the curator separates the photos (?alone=1).
        "siblings": selectors.sighting_siblings(request.user, job.annotation),
        "alone": request.GET.get("alone") == "1",
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "identification/_job.html", context)
    return render(request, "identification/job.html", context)


def _photo(user: AnyUser, annotation: Annotation) -> dict[str, object]:
    asset = annotation.media_asset
    # Originals can carry precise EXIF positions: full resolution for those who curate the photo and may
    # know its place, the (stripped) display rendition for everyone else, so no photo is a broken image.
    full = can(user, annotation, Action.CURATE) and not catalog_selectors.photo_location_blurred(user, asset)
    return {
        "src": reverse("media-file", args=[asset.pk, "original" if full else "preview"]),
        "width": asset.width,
        "height": asset.height,
        "box": list(annotation.box),
    }


def _compare_data(
    user: AnyUser, job: MatchJob, rows: list[matching_selectors.CandidateRow]
) -> dict[str, object]:
    """What the side-by-side comparison draws: the query, and each candidate the user may see with the
    verified keypoint matches between them (photo pixels)."""
    return {
        "query": _photo(user, job.annotation),
        "candidates": [
            _photo(user, row.candidate.annotation)
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


@login_required
@require_POST
def match_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """The buttons of the job page (and their keyboard shortcuts): plain form posts, so they work without
    JavaScript. From the review queue, a decision that settles the photo moves on to the next one."""
    job = get_for(request.user, matching_selectors.jobs_for(request.user), Action.CURATE, pk=pk)
    post = request.POST
    kind = post.get("kind", "")
    try:
        if kind == "undo":
            decision = decisions.undo(actor=request.user, annotation=job.annotation)
        else:
            decision = decisions.decide(
                actor=request.user,
                job=job,
                kind=kind,
                candidate_rank=parse_id(post.get("candidate_rank")),
                candidate_individual=parse_id(post.get("candidate_individual")),
                same_as=parse_id(post.get("same_as")),
                with_photos=[i for v in post.getlist("with_photos") if (i := parse_id(v)) is not None],
                new_code=post.get("new_code", ""),
                note=post.get("note", ""),
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
    job = review.claim_next(request.user, parse_id(project))
    if job is None:
        return render(request, "identification/review_empty.html", {"project": project})
    return redirect(f"{reverse('match-job', kwargs={'pk': job.pk})}?queue={project or 'all'}")


def _merge_targets(user: AnyUser, individual: Individual) -> QuerySet[Individual]:
    return (
        catalog_selectors.individuals_for(user, Action.CURATE)
        # Identities are linked within one organisation only (permissions.require_link).
        .filter(species=individual.species, project__organization_id=individual.project.organization_id)
        .exclude(status=IndividualStatus.MERGED)
        .exclude(pk=individual.pk)
        .order_by("project__name", "code")
    )


@login_required
@require_http_methods(["GET", "POST"])
def individual_merge(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: choose the individual to merge into and see what would happen. POST: merge."""
    user = request.user
    source = get_for(user, catalog_selectors.individuals_for(user), Action.CURATE, pk=pk)
    targets = _merge_targets(user, source)
    raw = request.POST.get("target") or request.GET.get("target", "")
    target = targets.filter(pk=target_id).first() if (target_id := parse_id(raw)) is not None else None
    preview, error = None, ""
    if target is not None:
        try:
            preview = selectors.merge_preview(source, target)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if request.method == "POST" and target is not None and preview is not None:
        try:
            change = identities.individual_merge(actor=user, source=source, target=target)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            messages.success(request, f"{source.code} merged into {target.code}.")
            return redirect(f"{reverse('individual-detail', args=[target.pk])}?changed={change.pk}")
    context = {"individual": source, "targets": targets, "target": target, "preview": preview, "error": error}
    return render(request, "identification/merge.html", context, status=400 if error else 200)


@login_required
@require_POST
def individual_split(request: HttpRequest, pk: int) -> HttpResponse:
    """From the individual page's selected photos: first a preview, then (confirm=1) the split."""
    user = request.user
    individual = get_for(user, catalog_selectors.individuals_for(user), Action.CURATE, pk=pk)
    ids = sorted({i for v in request.POST.getlist("annotations") if (i := parse_id(v)) is not None})
    new_code = request.POST.get("new_code", "")
    preview, error = None, ""
    try:
        preview = selectors.split_preview(individual, ids)
        if request.POST.get("confirm") == "1":
            change = identities.individual_split(
                actor=user, individual=individual, annotation_ids=ids, new_code=new_code
            )
            messages.success(
                request, f"{len(ids)} photo{'s' if len(ids) > 1 else ''} split off into {change.other.code}."
            )
            return redirect(f"{reverse('individual-detail', args=[change.other_id])}?changed={change.pk}")
    except ValidationError as exc:
        error = " ".join(exc.messages)
    annotations = catalog_selectors.annotations_for(user).filter(pk__in=ids, individual=individual)
    context = {
        "individual": individual,
        "annotations": annotations,
        "preview": preview,
        "error": error,
        "new_code": new_code,
    }
    return render(request, "identification/split.html", context, status=400 if error else 200)


@login_required
@require_POST
def identity_change_undo(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    change = get_for(user, IdentityChange.objects.select_related("individual", "other"), Action.CURATE, pk=pk)
    try:
        identities.identity_change_undo(actor=user, change=change)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            f"{change.get_kind_display()} of {change.individual.code} and {change.other.code} undone.",
        )
    return redirect("individual-detail", pk=change.individual_id)


@login_required
@require_GET
def identity_changes(request: HttpRequest, pk: int) -> HttpResponse:
    """The individual page's merge and split history (loaded into it by htmx)."""
    user = request.user
    individual = get_for(user, catalog_selectors.individuals_for(user), pk=pk)
    context = {
        "changes": selectors.identity_changes_of(individual)[:20],
        "can_curate": can(user, individual, Action.CURATE),
    }
    return render(request, "identification/_identity_changes.html", context)


@login_required
@require_POST
def match_rerank(request: HttpRequest, pk: int) -> HttpResponse:
    """Rank a job's list again now (the catalogue changed since, or the curator wants to be sure)."""
    job = get_for(request.user, matching_selectors.jobs_for(request.user), Action.CURATE, pk=pk)
    celery_app.send_task("identification.tasks.rerank_job", args=[job.pk])
    messages.info(request, "Ranking the candidates again with the catalogue as it is now…")
    return redirect("match-job", pk=job.pk)
