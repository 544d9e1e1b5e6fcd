"""What identification does when the catalogue changes: the one place the catalogue's signals
(catalog.signals) are received. Catalog depends on nothing here; it only says what happened.

- a new or redrawn unidentified annotation is matched; other changed geometry is embedded again, and its old
  vectors are dropped at once so no search uses them; an annotation that changed identity has the undecided
  jobs it could enter re-ranked;
- an imported upload batch is matched as a whole, once every photo is in;
- a new photo gets animal boxes proposed (with a detector configured);
- a species' matching settings changed: its annotations are prepared again.
"""

from __future__ import annotations

from celery import current_app as celery_app
from django.conf import settings
from django.db import transaction

from catalog import signals
from catalog.models import Annotation, MediaAsset, Species, UploadBatch
from identification.matching import store
from identification.matching.services import match_job_start
from resight.permissions import AnyUser


def connect() -> None:
    """Called once, from the app's ready()."""
    signals.annotation_saved.connect(on_annotation_saved, dispatch_uid="identification.on_annotation_saved")
    signals.batch_imported.connect(on_batch_imported, dispatch_uid="identification.on_batch_imported")
    signals.matching_settings_changed.connect(
        on_matching_settings_changed, dispatch_uid="identification.on_matching_settings_changed"
    )
    signals.media_asset_stored.connect(
        on_media_asset_stored, dispatch_uid="identification.on_media_asset_stored"
    )


def _send(task: str, object_id: int, **options: object) -> None:
    # By name, through the routes (settings.CELERY_TASK_ROUTES): the tasks module imports this one's.
    celery_app.send_task(task, args=[object_id], kwargs=options)


def on_annotation_saved(
    *,
    annotation: Annotation,
    created: bool,
    actor: AnyUser,
    geometry_changed: bool,
    match_now: bool = True,
    individuals_changed: list[int] | None = None,
    **kwargs: object,
) -> None:
    """New annotations of unknown animals are matched at once (bulk uploads: once their batch is in, see
    on_batch_imported), and again when a curator redraws their box; other changed geometry is re-embedded.
    Vectors of an old geometry are dropped at once, so no search meanwhile uses them."""
    if geometry_changed and not created:
        store.forget(annotation)
    if (
        annotation.individual_id is None
        and (created or geometry_changed)
        and match_now
        and actor is not None
        and actor.is_authenticated
    ):
        with transaction.atomic():
            match_job_start(actor=actor, annotation=annotation)
    elif geometry_changed:
        # A changed box redoes what a search may have stored from the old one since it was forgotten above.
        _send("identification.tasks.prepare_annotation", annotation.pk, redo=not created)
    if annotation.individual_id is not None:
        # A no-op until the curated set grew enough.
        _send("identification.tasks.refit_calibration", annotation.species_id)
    if individuals_changed:
        # Undecided jobs this identity could enter (or leave) are re-ranked (matching.freshness).
        celery_app.send_task("identification.tasks.refresh_candidates", args=[individuals_changed])


def on_batch_imported(*, batch: UploadBatch, annotation_ids: list[int], **kwargs: object) -> None:
    """Match every unidentified annotation of an upload batch, now that all its siblings are in the
    catalogue. Idempotent: annotations that already have a job are left alone."""
    pending = Annotation.objects.filter(
        pk__in=annotation_ids, individual__isnull=True, match_jobs__isnull=True
    )
    with transaction.atomic():
        for annotation in pending.select_related("species", "media_asset"):
            match_job_start(actor=batch.actor, annotation=annotation)


def on_media_asset_stored(*, media_asset: MediaAsset, **kwargs: object) -> None:
    """With a detector configured, every new photo gets animal boxes proposed."""
    if settings.RESIGHT_DETECTOR:
        _send("identification.tasks.propose_boxes", media_asset.pk)


def on_matching_settings_changed(*, species: Species, **kwargs: object) -> None:
    """Redo the vectors and features of every annotation of the species, in the background."""
    for annotation_id in Annotation.objects.filter(species=species).values_list("pk", flat=True):
        _send("identification.tasks.prepare_annotation", annotation_id, redo=True)
