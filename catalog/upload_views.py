"""Bulk upload pages: create a batch, send photos (one request each, with per-file progress and resume),
replace the CSV, run the dry run, import, and watch progress (htmx polling)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from catalog.bulk import services as bulk
from catalog.forms import UploadBatchForm
from catalog.models import ItemState, UploadBatch
from resight.permissions import Action, get_for, granted, scope


@login_required
@require_http_methods(["GET", "POST"])
def upload_list(request: HttpRequest) -> HttpResponse:
    """The user's projects' uploads, and the form that starts a new one."""
    user = request.user
    form = UploadBatchForm(request.POST or None, request.FILES or None, user=user, initial=request.GET.dict())
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            batch = bulk.batch_create(
                actor=user,
                project=data["project"],
                species=data["species"],
                viewpoint=data["viewpoint"],
                body_part=data["body_part"],
                default_time=data["default_time"],
                time_zone=data["time_zone"],
                folders_name_individuals=data["folders_name_individuals"],
                photos_are_crops=data["photos_are_crops"],
                csv_file=data["csv_file"],
                zip_file=data["zip_file"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return redirect("upload-detail", pk=batch.pk)
    batches = scope(UploadBatch.objects.select_related("project", "created_by"), user, Action.CONTRIBUTE)[:30]
    return render(
        request,
        "catalog/upload_list.html",
        {"form": form, "batches": batches},
        status=400 if form.errors else 200,
    )


def _batch(request: HttpRequest, pk: int, action: Action = Action.CONTRIBUTE) -> UploadBatch:
    return get_for(
        request.user, UploadBatch.objects.select_related("project", "created_by", "species"), action, pk=pk
    )


@login_required
@require_GET
def upload_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _batch(request, pk)
    items = batch.items.select_related("annotation", "sighting").order_by("name")
    context = {
        "batch": batch,
        "items": items,
        "received": [i.name for i in items],
        "problems": batch.problems,
        "imported_items": [i for i in items if i.state == ItemState.IMPORTED][:200],
        "can_curate": granted(request.user, batch.project_id, Action.CURATE),
    }
    if request.htmx:  # type: ignore[attr-defined]
        if not batch.is_working:
            # The worker finished: the whole page changes (photo and CSV forms, problems), not just the bar.
            return HttpResponseClientRefresh()
        return render(request, "catalog/_upload_status.html", context)
    return render(request, "catalog/upload_detail.html", context)


@login_required
@require_POST
def upload_photos(request: HttpRequest, pk: int) -> HttpResponse:
    """Photos for the batch: the uploader script sends one per request (JSON answer, per-file progress and
    resume); without JavaScript the form sends them all at once and comes back to the page."""
    batch = _batch(request, pk)
    received, errors = [], []
    for upload in request.FILES.getlist("photos"):
        # The browser sends a folder's files with their relative path in the `path` field.
        name = request.POST.get("path") or upload.name or "photo"
        try:
            received.append(
                bulk.batch_add_photo(actor=request.user, batch=batch, name=name, stream=upload).name
            )
        except ValidationError as exc:
            errors += exc.messages
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"received": received, "errors": errors}, status=400 if errors else 200)
    for error in errors:
        messages.error(request, error)
    if received:
        messages.success(request, f"{len(received)} photo{'s' if len(received) > 1 else ''} received.")
    return redirect("upload-detail", pk=batch.pk)


@login_required
@require_POST
def upload_csv(request: HttpRequest, pk: int) -> HttpResponse:
    batch = _batch(request, pk)
    upload = request.FILES.get("csv_file")
    if upload is None:
        messages.error(request, "Choose a CSV file.")
        return redirect("upload-detail", pk=batch.pk)
    try:
        bulk.batch_replace_csv(actor=request.user, batch=batch, csv_file=upload)
        bulk.batch_check(actor=request.user, batch=batch)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("upload-detail", pk=batch.pk)


@login_required
@require_POST
def upload_step(request: HttpRequest, pk: int, step: str) -> HttpResponse:
    """The dry run (`check`) and the import (`import`)."""
    batch = _batch(request, pk)
    try:
        if step == "check":
            bulk.batch_check(actor=request.user, batch=batch)
        else:
            bulk.batch_import(actor=request.user, batch=batch)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("upload-detail", pk=batch.pk)
