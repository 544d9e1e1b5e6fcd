"""The import of a checked bulk upload: one transaction per photo (sighting, photo, annotation,
individual) through the catalogue's services, with the rights of the user who started it; resumable."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from catalog import services, signals
from catalog.models import (
    Annotation,
    BatchState,
    Individual,
    ItemState,
    Sighting,
    Species,
    UploadBatch,
    UploadItem,
)
from resight import notifications, webhooks
from resight.models import WebhookEvent

Progress = Callable[[list[int]], Iterable[int]]


def run(batch_id: int, progress: Progress = iter) -> None:
    """Worker side of the import; resumes after a killed worker (imported photos are skipped). Matching of
    the batch's unidentified animals starts once every photo has its annotation."""
    batch = UploadBatch.objects.select_related("project", "created_by", "acting_user").get(pk=batch_id)
    if batch.state == BatchState.IMPORTING:
        pending = batch.items.filter(state=ItemState.RECEIVED).order_by("name").values_list("pk", flat=True)
        try:
            for item_id in progress(list(pending)):
                import_item(batch, item_id)
        except (ValidationError, PermissionDenied) as exc:
            # The catalogue changed since the dry run (a duplicate photo, a revoked role): stop, keep what
            # was imported, say why; checking again lists what is left.
            UploadBatch.objects.filter(pk=batch.pk).update(
                state=BatchState.FAILED,
                error=" ".join(getattr(exc, "messages", [str(exc)])),
                updated_at=timezone.now(),
            )
            return
        UploadBatch.objects.filter(pk=batch.pk, state=BatchState.IMPORTING).update(
            state=BatchState.MATCHING, updated_at=timezone.now()
        )
        batch.refresh_from_db()
    if batch.state == BatchState.MATCHING:
        _imported(batch)


def _imported(batch: UploadBatch) -> None:
    annotation_ids = list(
        batch.items.filter(annotation__isnull=False).values_list("annotation_id", flat=True)
    )
    # Every photo has its annotation now: identification matches the unidentified ones.
    signals.batch_imported.send(sender=UploadBatch, batch=batch, annotation_ids=annotation_ids)
    UploadBatch.objects.filter(pk=batch.pk, state=BatchState.MATCHING).update(
        state=BatchState.DONE, finished_at=timezone.now(), updated_at=timezone.now()
    )
    webhooks.emit(
        WebhookEvent.IMPORT_DONE,
        batch.project,
        {
            "upload": {
                "id": batch.pk,
                "imported": batch.imported,
                "url": reverse("upload-detail", args=[batch.pk]),
            }
        },
    )
    notifications.notify(
        [batch.created_by],
        kind="upload_done",
        text=f"Upload {batch.pk} imported: {batch.imported} photos.",
        url=reverse("upload-detail", args=[batch.pk]),
    )
    if batch.source_zip:  # every photo in it is a media asset now; the CSV stays as provenance
        batch.source_zip.delete(save=False)
        UploadBatch.objects.filter(pk=batch.pk).update(source_zip="")


def import_item(batch: UploadBatch, item_id: int) -> Annotation | None:
    """Import one checked photo in one transaction; a photo already imported is skipped."""
    with transaction.atomic():
        item = UploadItem.objects.select_for_update().filter(pk=item_id, state=ItemState.RECEIVED).first()
        if item is None:
            return None
        plan = item.plan
        species = Species.objects.get(pk=plan["species"])
        sighting = _sighting(batch, item, plan)
        with item.file.open("rb") as f:
            asset = services.media_asset_create(
                actor=batch.actor,
                project=batch.project,
                photo=services.PhotoUpload(posixpath.basename(item.name), f),
                sighting=sighting,
            )
        # Without a box the whole photo: tight for a catalogue of crops, a loose box otherwise.
        x, y, w, h = plan["box"] or (0, 0, asset.width, asset.height)
        annotation = services.annotation_create(
            actor=batch.actor,
            media_asset=asset,
            species=species,
            box=(x, y, w, h),
            viewpoint=plan["viewpoint"],
            body_part=plan["body_part"],
            individual=_individual(batch, species, plan["individual"]) if plan["individual"] else None,
            match_now=False,  # the whole batch is matched once it is in (run)
            cropped_photo=batch.photos_are_crops and not plan["box"],
        )
        UploadItem.objects.filter(pk=item.pk).update(
            state=ItemState.IMPORTED, sighting=sighting, annotation=annotation
        )
        UploadBatch.objects.filter(pk=batch.pk).update(imported=F("imported") + 1, updated_at=timezone.now())
        staged = str(item.file.name)
        transaction.on_commit(lambda: item.file.storage.delete(staged))
    return annotation


def _individual(batch: UploadBatch, species: Species, code: str) -> Individual:
    existing = Individual.objects.filter(project=batch.project, code=code).first()
    if existing is not None:
        return existing
    return services.individual_create(actor=batch.actor, project=batch.project, species=species, code=code)


def _sighting(batch: UploadBatch, item: UploadItem, plan: dict[str, Any]) -> Sighting:
    group = plan["group"]
    if group:
        sibling = batch.items.filter(plan__group=group, sighting__isnull=False).exclude(pk=item.pk).first()
        if sibling is not None and sibling.sighting is not None:
            return sibling.sighting
    return services.sighting_create(
        actor=batch.actor,
        project=batch.project,
        data=services.SightingData.from_json(plan["sighting"]),
    )
