"""The training worker's side of a retraining run (`identification.registry.retraining` describes the loop):
export the curated crops, fine-tune and score (ml_service.retrain, torch), then a new embedding space or a
rejection. Imported by the tasks module only, so the web tier and beat never load torch."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from catalog.models import Annotation, Species
from identification.matching import crops, jobs, loaded, spaces
from identification.models import RUN_WORKING_STATES, EmbeddingSpace, RunState, TrainingRun
from ml_service import embedding, evaluation, retrain, splits, training
from ml_service.imaging import masked_pixels

logger = logging.getLogger(__name__)
STALE_CLAIM = dt.timedelta(minutes=15)


def folder(run: TrainingRun) -> Path:
    return Path(settings.RESIGHT_MODELS_DIR) / run.folder_name


def claim(run_id: int) -> bool:
    """Take the run unless a live worker holds it (its heartbeat is recent)."""
    stale = timezone.now() - STALE_CLAIM
    return bool(
        TrainingRun.objects.filter(pk=run_id, state__in=RUN_WORKING_STATES)
        .filter(Q(claimed_by="") | Q(claimed_by=jobs.worker_id()) | Q(heartbeat_at__lt=stale))
        .update(claimed_by=jobs.worker_id(), heartbeat_at=timezone.now())
    )


def _set(run: TrainingRun, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(run, name, value)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), **fields)


# --- the steps --------------------------------------------------------------------------------------------


def export_curated(run: TrainingRun) -> list[evaluation.Item]:
    """The identified annotations' crops, as matching sees them (masked, mirrored to the canonical side),
    in the dataset layout of ml_service (files that exist are kept: resumable)."""
    root = folder(run) / "data"
    rows: list[evaluation.Item] = []
    annotations = (
        Annotation.objects.filter(individual__isnull=False)
        .select_related("media_asset", "species", "sighting")
        .order_by("pk")
    )
    for annotation in annotations:
        side = crops.matching_viewpoint(annotation)[0]
        label = f"{annotation.individual_id}" + (f"-{side}" if annotation.species.separate_sides else "")
        path = root / "images" / f"{annotation.species_id}-{label}" / f"{annotation.pk}.jpg"
        if not path.exists():
            try:
                crop = crops.crop_of(annotation)
            except crops.PhotoUnreadable:
                logger.warning("annotation %s left out of training: photo unreadable", annotation.pk)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            masked_pixels(crop).save(buffer, format="JPEG", quality=92)
            path.with_suffix(".tmp").write_bytes(buffer.getvalue())
            path.with_suffix(".tmp").replace(path)
        rows.append(
            evaluation.Item(
                path, label, annotation.species.scientific_name, side, str(annotation.sighting_id)
            )
        )
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "individual_id", "species", "viewpoint", "encounter"])
        for item in rows:
            writer.writerow(
                [item.path.relative_to(root), item.individual, item.species, item.viewpoint, item.encounter]
            )
    return rows


def _start_weights(space: EmbeddingSpace | None) -> str:
    """Training continues from the version the run is compared with when it is a network trained here of
    the configured backbone (the shipped base model, an earlier run), so what it learnt carries over to the
    curated species; otherwise it starts from the backbone's ImageNet weights."""
    trained = loaded.space_model(space).trained_weights() if space is not None else None
    if trained is None or trained[0] != settings.RESIGHT_TRAIN_BACKBONE:
        return ""
    return str(trained[1])


def _config(run: TrainingRun) -> training.TrainConfig:
    return training.TrainConfig(
        init=_start_weights(run.compared_with),
        backbone=settings.RESIGHT_TRAIN_BACKBONE,
        image_size=settings.RESIGHT_TRAIN_IMAGE_SIZE,
        epochs=settings.RESIGHT_TRAIN_EPOCHS,
        batch_size=settings.RESIGHT_TRAIN_BATCH_SIZE,
        # Flip augmentation would mix the sides a species keeps apart.
        flips=not Species.objects.filter(separate_sides=True).exists(),
    )


def run(run_id: int, *, stop_after_epochs: int | None = None) -> None:
    """Carry a run as far as it goes; safe to call again after an interruption."""
    if not claim(run_id):
        return
    run = TrainingRun.objects.select_related("compared_with", "candidate").get(pk=run_id)
    try:
        if run.state in (RunState.QUEUED, RunState.EXPORTING, RunState.TRAINING, RunState.EVALUATING):
            _train_and_evaluate(run, stop_after_epochs)
        # Matching keeps the active space until the catalogue is in the new one; then one switch.
        reembedding = run.state == RunState.REEMBEDDING and run.candidate is not None
        if reembedding and spaces.reembed(run.candidate.pk):  # type: ignore[union-attr]
            _set(run, state=RunState.DONE, finished_at=timezone.now())
    except Exception as exc:  # the run records every failure; the active model is untouched
        logger.exception("training run %s failed", run_id)
        _set(run, state=RunState.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())


def _train_and_evaluate(run: TrainingRun, stop_after_epochs: int | None) -> None:
    _set(run, state=RunState.EXPORTING)
    items = export_curated(run)
    config = _config(run)

    def split_made(split: splits.Split) -> None:
        _set(
            run,
            state=RunState.TRAINING,
            species_counts=retrain.species_counts(split.train),
            split={
                "train": len(split.train),
                "test": len(split.test),
                "unseen_individuals": len(split.unseen),
            },
            config=config.__dict__,
        )

    def beat(entry: training.EpochLog) -> None:
        earlier = [h for h in run.history if h["epoch"] < entry.epoch]
        _set(run, history=[*earlier, entry.__dict__])

    def trained(history: training.History) -> None:
        _set(run, state=RunState.EVALUATING, history=[e.__dict__ for e in history.epochs])

    compared: list[EmbeddingSpace] = []

    def active_model() -> embedding.EmbeddingModel:
        compared.append(spaces.active_space())  # the version matching uses once training is done
        return loaded.space_model(compared[-1])

    result = retrain.fine_tune(
        items,
        folder(run),
        config,
        active_model,
        split_seed=run.pk,
        on_split=split_made,
        log=beat,
        on_trained=trained,
        stop_after=stop_after_epochs,
    )
    if not result.complete:
        return  # interrupted on purpose (tests); the next call resumes from the checkpoint
    assert result.trained is not None
    start, candidate = result.scores["start"], result.scores["trained"]
    metrics: dict[str, Any] = {
        "active": start["test"],
        "candidate": candidate["test"],
        "active_unseen": start["unseen"],
        "candidate_unseen": candidate["unseen"],
        "gain": round(result.gain, 2),
    }
    if result.gain < settings.RESIGHT_RETRAIN_MIN_GAIN:
        _set(
            run,
            state=RunState.REJECTED,
            metrics=metrics,
            compared_with=compared[-1],
            finished_at=timezone.now(),
        )
        return
    space = spaces.create(result.trained, model_path=f"{run.folder_name}/{training.EXPORT}", training_run=run)
    _set(run, state=RunState.REEMBEDDING, metrics=metrics, compared_with=compared[-1], candidate=space)
