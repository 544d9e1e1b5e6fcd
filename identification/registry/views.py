"""The model registry: embedding-space versions, training runs with their metrics side by side and loss
curves, re-embedding progress, an embedding map per species and version; operators (staff) start a run or
switch versions (rollback): the services check it (retraining.start, matching.spaces.activate)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from catalog.models import Annotation, Species
from identification.matching import spaces
from identification.models import EmbeddingSpace, TrainingRun
from identification.registry import plots, retraining, selectors
from ml_service.weights import WeightsMissing
from resight.http.params import parse_id
from resight.permissions import Action, is_operator, require_operator, scope


def _comparison(run: TrainingRun) -> list[dict[str, object]]:
    """Per species and test set: the active and the candidate model's metrics, side by side."""
    rows = []
    for part, label in (("", "test"), ("_unseen", "unseen in training")):
        active, candidate = run.metrics.get(f"active{part}", {}), run.metrics.get(f"candidate{part}", {})
        for group in sorted(set(active) | set(candidate)):
            rows.append(
                {"group": group, "set": label, "active": active.get(group), "candidate": candidate.get(group)}
            )
    return rows


def _id(value: str) -> int:
    """A primary key from a query parameter; anything else finds nothing (a 404, not an error)."""
    return parse_id(value) or 0


@login_required
@require_GET
def model_registry(request: HttpRequest) -> HttpResponse:
    all_runs = TrainingRun.objects.select_related("candidate", "compared_with")
    runs = all_runs[:20]
    wanted = request.GET.get("run", "")
    chosen = all_runs.filter(pk=_id(wanted)).first() if wanted else None
    run = chosen or (runs[0] if runs else None)
    # Counts over the whole instance (vectors, curated photos, training data) are the operators'; a
    # member sees the versions and how well they rank, and maps only what they may see.
    operator = is_operator(request.user)
    versions = EmbeddingSpace.objects.select_related("training_run")
    if operator:
        versions = versions.annotate(vectors=Count("embeddings"))
    visible = scope(Annotation.objects.filter(individual__isnull=False), request.user, Action.VIEW)
    species = Species.objects.filter(annotations__in=visible).distinct()
    return render(
        request,
        "identification/models.html",
        {
            "operator": operator,
            "spaces": versions.order_by("-created_at"),
            "runs": runs,
            "run": run,
            "comparison": _comparison(run) if run else [],
            "loss_svg": plots.loss_curve(run.history) if run else "",
            "species": species,
            "newly_curated": retraining.newly_curated() if operator else None,
            "published": spaces.published_models() if operator else [],
            "params": request.GET,
        },
    )


@login_required
@require_GET
def model_map(request: HttpRequest) -> HttpResponse:
    """The t-SNE map of one species in one space (only the annotations the user may see)."""
    space = get_object_or_404(EmbeddingSpace, pk=_id(request.GET.get("space", "")))
    species = get_object_or_404(Species, pk=_id(request.GET.get("species", "")))
    vectors, labels = selectors.space_vectors(request.user, space, species.pk, plots.MAP_MAX_POINTS)
    body = plots.embedding_map(
        vectors, labels, f"{species.common_name} in {space.key} ({len(labels)} photos)"
    )
    response = HttpResponse(body, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@require_POST
def model_train(request: HttpRequest) -> HttpResponse:
    run = retraining.start(trigger="manual", actor=request.user, force=True)
    if run is None:
        messages.error(request, "A training run is in progress already.")
    else:
        messages.success(request, f"Training run {run.pk} queued on the training worker.")
    return redirect("model-registry")


@login_required
@require_POST
def model_activate(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch matching to an embedding space whose catalogue is fully embedded (also the rollback)."""
    require_operator(request.user)
    space = get_object_or_404(EmbeddingSpace, pk=pk)
    if space.ready_at is None:
        messages.error(request, f"{space.key} has not finished re-embedding the catalogue.")
    else:
        spaces.activate(space, actor=request.user, reason="chosen in the registry")
        messages.success(request, f"Matching now uses {space.key}.")
    return redirect("model-registry")


@login_required
@require_POST
def model_adopt(request: HttpRequest) -> HttpResponse:
    """Switch matching to a published model: re-embed the catalogue in the background, then switch."""
    require_operator(request.user)
    try:
        space = spaces.adopt(request.POST.get("model", ""), actor=request.user)
    except KeyError:  # a name that is not registered
        messages.error(request, "Choose one of the published models.")
        return redirect("model-registry")
    except WeightsMissing as exc:  # a shipped file deleted from the install: say which and how to rebuild it
        messages.error(request, str(exc))
        return redirect("model-registry")
    if space.is_active:
        messages.info(request, f"Matching uses {space.key} already.")
    else:
        messages.success(
            request, f"Re-embedding the catalogue with {space.key}; matching switches to it when it is done."
        )
    return redirect("model-registry")
