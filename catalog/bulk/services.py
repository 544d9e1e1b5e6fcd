"""The services of a bulk upload: what the views, the API and the import command call. Each checks the
permission policy; the work itself runs on a worker (or inline, for the command line)."""

from __future__ import annotations

import datetime as dt
from typing import IO

from celery import current_app as celery_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone

from catalog.bulk import check, importing
from catalog.bulk.receive import OPEN_STATES, receive_file
from catalog.exports import coco
from catalog.models import BatchState, ItemState, Species, UploadBatch, UploadItem, Viewpoint
from resight import audit
from resight.models import Project
from resight.permissions import Action, AnyUser, granted, require, require_project

MAX_CSV_BYTES = 50_000_000


def batch_create(
    *,
    actor: AnyUser,
    project: Project,
    species: Species | None = None,
    viewpoint: str = Viewpoint.UNKNOWN,
    body_part: str = "",
    default_time: dt.datetime | None = None,
    time_zone: str = "UTC",
    folders_name_individuals: bool = False,
    photos_are_crops: bool = False,
    csv_file: IO[bytes] | None = None,
    zip_file: IO[bytes] | None = None,
) -> UploadBatch:
    """A new batch; its CSV and zip are stored before anything else, then (with a zip) checked at once."""
    require_project(actor, project, Action.CONTRIBUTE, species.pk if species else None)
    assert isinstance(actor, User)
    batch = UploadBatch(
        project=project,
        created_by=actor,
        species=species,
        viewpoint=viewpoint,
        body_part=body_part,
        default_time=default_time,
        time_zone=time_zone,
        folders_name_individuals=folders_name_individuals,
        photos_are_crops=photos_are_crops,
    )
    batch.full_clean(exclude=["project", "created_by", "species", "csv", "source_zip"])
    batch.save()
    if csv_file is not None:
        batch.csv.save("metadata.csv", ContentFile(_read_csv_upload(csv_file)), save=True)
    if zip_file is not None:
        batch.source_zip.save("photos.zip", File(zip_file), save=True)
        batch_check(actor=actor, batch=batch)
    audit.record(actor=actor, action="upload_batch.create", obj=batch, project_id=project.pk)
    return batch


def _read_csv_upload(stream: IO[bytes]) -> bytes:
    """The metadata file as the CSV the dry run reads: a COCO annotations.json (a JSON object) is turned
    into its rows first."""
    data = stream.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise ValidationError({"csv": [f"The CSV is larger than {MAX_CSV_BYTES // 1_000_000} MB."]})
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return coco.to_csv(data).encode()
    return data


def _require_open(actor: AnyUser, batch: UploadBatch) -> None:
    """Photos, a CSV or a new check are taken until the import is done; after an import that stopped
    half-way (FAILED) too: the check then covers the photos not imported yet."""
    require(actor, batch, Action.CONTRIBUTE)
    if batch.state not in OPEN_STATES:
        raise ValidationError({"batch": [f"The upload is {batch.get_state_display().lower()}: wait for it."]})


def batch_add_photo(*, actor: AnyUser, batch: UploadBatch, name: str, stream: IO[bytes]) -> UploadItem:
    """Stage one photo sent by the browser (resending one the batch has is a no-op)."""
    _require_open(actor, batch)
    data = stream.read(settings.RESIGHT_MAX_UPLOAD_BYTES + 1)
    item = receive_file(batch, name, data)
    _reopen(batch)
    return item


def batch_replace_csv(*, actor: AnyUser, batch: UploadBatch, csv_file: IO[bytes]) -> UploadBatch:
    """A corrected CSV replaces the old one; the batch must be checked again."""
    _require_open(actor, batch)
    data = _read_csv_upload(csv_file)
    old = batch.csv.name if batch.csv else None
    batch.csv.save("metadata.csv", ContentFile(data), save=True)
    if old and old != batch.csv.name:
        batch.csv.storage.delete(old)
    _reopen(batch)
    audit.record(actor=actor, action="upload_batch.csv", obj=batch, project_id=batch.project_id)
    return batch


def _reopen(batch: UploadBatch) -> None:
    UploadBatch.objects.filter(pk=batch.pk).update(state=BatchState.RECEIVING, problems=[], error="")
    batch.refresh_from_db()


def batch_check(*, actor: AnyUser, batch: UploadBatch, inline: bool = False) -> UploadBatch:
    """Start the dry run (it checks what `actor` may do, e.g. name individuals): on a worker, or here and
    now with `inline` (the import command)."""
    _require_open(actor, batch)
    UploadBatch.objects.filter(pk=batch.pk).update(
        state=BatchState.VALIDATING,
        checked=0,
        problems=[],
        error="",
        acting_user=actor,
        updated_at=timezone.now(),
    )
    if inline:
        check.run(batch.pk)
    else:
        transaction.on_commit(lambda: _enqueue("catalog.tasks.check_batch", batch.pk))
    batch.refresh_from_db()
    return batch


def batch_import(
    *, actor: AnyUser, batch: UploadBatch, inline: bool = False, progress: importing.Progress = iter
) -> UploadBatch:
    """Start the import of a batch whose dry run found nothing wrong: on a worker, or here and now with
    `inline`. The import is `actor`'s: naming individuals needs their curate right, whoever made the batch
    or its CSV."""
    require(actor, batch, Action.CONTRIBUTE)
    named = (
        batch.items.filter(state=ItemState.RECEIVED, plan__individual__gt="")
        .values_list("plan__species", flat=True)
        .distinct()
    )
    if any(not granted(actor, batch.project_id, Action.CURATE, [int(s)]) for s in named if s):
        raise PermissionDenied(
            "This upload names individuals: only a curator of their species may import it."
        )
    if not UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALID).update(
        state=BatchState.IMPORTING, acting_user=actor, updated_at=timezone.now()
    ):
        raise ValidationError({"batch": ["Only a checked upload with no problems can be imported."]})
    audit.record(actor=actor, action="upload_batch.import", obj=batch, project_id=batch.project_id)
    if inline:
        importing.run(batch.pk, progress)
    else:
        transaction.on_commit(lambda: _enqueue("catalog.tasks.import_batch", batch.pk))
    batch.refresh_from_db()
    return batch


def _enqueue(task: str, batch_id: int) -> None:
    # By name, through the routes (settings.CELERY_TASK_ROUTES): the tasks module imports this package.
    celery_app.send_task(task, args=[batch_id])
