"""Running ml_service on stored annotations and persisting what it computes (embeddings, local features).

Models are loaded once per worker process and reused."""

from __future__ import annotations

import io
import logging
import threading
from functools import cache
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from PIL import Image

from catalog import services as catalog_services
from catalog.models import Annotation, MediaAsset
from identification import search
from identification.models import AnnotationEmbedding, EmbeddingSpace, LocalFeatureSet
from ml_service import embedding, imaging, local_features, segmentation

_space_lock = threading.Lock()
logger = logging.getLogger(__name__)


class PhotoUnreadable(ValueError):
    """The stored photo cannot be decoded any more (damaged storage, truncated copy)."""


@cache
def embedding_model(name: str) -> embedding.EmbeddingModel:
    dtype = torch.bfloat16 if settings.RESIGHT_EMBEDDING_BF16 else torch.float32
    model = embedding.get_model(name, dtype=dtype)
    model.compiled = settings.RESIGHT_EMBEDDING_COMPILE
    model.runtime = settings.RESIGHT_EMBEDDING_RUNTIME
    model.onnx_cache = settings.RESIGHT_ONNX_CACHE
    return model


@cache
def local_matcher(name: str) -> local_features.LocalMatcher:
    return local_features.get_matcher(name)


@cache
def detector(spec: str) -> segmentation.Detector:
    return segmentation.get_detector(spec)


@cache
def mask_refiner(name: str) -> segmentation.MaskRefiner:
    return segmentation.get_refiner(name)


def space_model(space: EmbeddingSpace) -> embedding.EmbeddingModel:
    """The model of a space: a registered one by name, or a fine-tuned one by its file."""
    if space.model_path:
        return embedding_model(str(Path(settings.RESIGHT_MODELS_DIR) / space.model_path))
    return embedding_model(space.model_name)


def active_space() -> EmbeddingSpace:
    """The space new embeddings and searches use; created (with its index) on first use."""
    space = EmbeddingSpace.objects.filter(is_active=True).first()
    if space is not None:
        return space
    model = embedding_model(settings.RESIGHT_EMBEDDING_MODEL)
    with _space_lock, transaction.atomic():
        space, _ = EmbeddingSpace.objects.get_or_create(
            key=model.key, defaults={"model_name": model.name, "version": model.version, "dim": model.dim}
        )
        if not EmbeddingSpace.objects.filter(is_active=True).exists():
            EmbeddingSpace.objects.filter(pk=space.pk).update(is_active=True)
            space.is_active = True
        search.ensure_index(space)
    return space


def photo(asset: MediaAsset) -> Image.Image:
    """The stored original, EXIF-oriented; PhotoUnreadable when storage holds no decodable image any more."""
    try:
        with asset.file.open("rb") as f:
            return imaging.load_oriented(io.BytesIO(f.read()))
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoUnreadable(
            f"photo {asset.pk} ({asset.original_filename}) cannot be decoded: {exc}"
        ) from exc


def annotation_crop(annotation: Annotation) -> imaging.Crop:
    """The annotation's box, masked to the animal. A missing mask is computed (and stored) first, so every
    embedding and feature set of an annotation is made from the same pixels."""
    image = photo(annotation.media_asset)
    mask = None
    if annotation.mask:
        try:
            with annotation.mask.open("rb") as f, Image.open(f) as m:
                mask = np.asarray(m.convert("L")) > 127
        except (OSError, SyntaxError, ValueError) as exc:
            raise PhotoUnreadable(f"the mask of annotation {annotation.pk} cannot be read: {exc}") from exc
    if mask is None and settings.RESIGHT_MASK_REFINER:
        mask = _refine_and_store(annotation, image)
    crop = imaging.crop(image, annotation.box, mask)
    return imaging.mirrored(crop) if matching_viewpoint(annotation)[1] else crop


def to_photo_pixels(annotation: Annotation, points: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """Keypoints of the annotation's crop (as extracted, at `crop_size`) in the pixels of its photo: undo the
    extractor's resizing, the mirroring, and the crop offset."""
    x, y, w, h = annotation.box
    out = points.astype(np.float64) * (w / crop_size[0], h / crop_size[1])
    if matching_viewpoint(annotation)[1]:
        out[:, 0] = w - out[:, 0]
    return out + np.array([x, y], dtype=np.float64)


OPPOSITE_SIDE = {"left": "right", "right": "left"}


def matching_viewpoint(annotation: Annotation) -> tuple[str, bool]:
    """The viewpoint an annotation is matched as, and whether its crop is mirrored to get there: species with
    a canonical side have the other side mirrored onto it, so both sides search (and are found) together."""
    canonical = annotation.species.canonical_viewpoint
    if canonical and annotation.viewpoint == OPPOSITE_SIDE.get(canonical):
        return canonical, True
    return annotation.viewpoint, False


class Crops:
    """Annotation crops decoded at most once within one unit of work (a job, a task): embedding and local
    features of the same annotation then share one decode of the original. Keep one per job, not per process:
    it holds every crop it made."""

    def __init__(self) -> None:
        self._made: dict[int, imaging.Crop] = {}

    def __call__(self, annotation: Annotation) -> imaging.Crop:
        if annotation.pk not in self._made:
            self._made[annotation.pk] = annotation_crop(annotation)
        return self._made[annotation.pk]


def _refine_and_store(annotation: Annotation, image: Image.Image) -> np.ndarray:
    refiner = mask_refiner(settings.RESIGHT_MASK_REFINER)
    mask = refiner.refine(image, annotation.box)
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG", optimize=True)
    catalog_services.annotation_set_mask(annotation=annotation, png=buffer.getvalue(), source=refiner.key)
    return mask


def forget(annotation: Annotation) -> None:
    """Drop the annotation's stored vectors and local features (its box, species, viewpoint or the species'
    mirroring changed): no search may use them any more, and they are recomputed on next use."""
    AnnotationEmbedding.objects.filter(annotation=annotation).delete()
    for feature_set in LocalFeatureSet.objects.filter(annotation=annotation):
        feature_set.file.delete(save=False)
        feature_set.delete()


def embed(
    annotations: list[Annotation],
    space: EmbeddingSpace,
    *,
    skip_unreadable: bool = False,
    crops: Crops | None = None,
) -> dict[int, np.ndarray]:
    """Embed (and store) the annotations that have no vector in `space` yet; return all their vectors.

    With `skip_unreadable`, annotations whose photo cannot be decoded are left out (and logged) instead of
    failing the whole batch: one damaged catalogue photo must not block every search."""
    stored = dict(space.embeddings.filter(annotation__in=annotations).values_list("annotation_id", "vector"))
    vectors = {a: search.as_array(v) for a, v in stored.items()}
    missing = [a for a in annotations if a.pk not in vectors]
    if missing:
        model = space_model(space)
        if model.key != space.key:
            raise RuntimeError(f"worker has {model.key}, job needs {space.key}")
        crop_of = crops or annotation_crop
        images = []
        for a in list(missing):
            try:
                images.append(crop_of(a))
            except PhotoUnreadable:
                if not skip_unreadable:
                    raise
                logger.warning("annotation %s skipped: its photo cannot be decoded", a.pk)
                missing.remove(a)
        computed = model.predict(images)
        search.store(space, [(a.pk, v, _filter_columns(a)) for a, v in zip(missing, computed, strict=True)])
        vectors.update({a.pk: v for a, v in zip(missing, computed, strict=True)})
    return vectors


def _filter_columns(annotation: Annotation) -> dict[str, object]:
    return {
        "project_id": annotation.media_asset.project_id,
        "species_id": annotation.species_id,
        "viewpoint": matching_viewpoint(annotation)[0],
        "body_part": annotation.body_part,
    }


def features(
    annotation: Annotation, matcher: local_features.LocalMatcher, crops: Crops | None = None
) -> local_features.Features:
    """Local features of the annotation's crop, extracted once per extractor version and cached in storage."""
    cached = LocalFeatureSet.objects.filter(annotation=annotation, extractor=matcher.key).first()
    if cached is not None:
        with cached.file.open("rb") as f, np.load(io.BytesIO(f.read())) as data:
            return local_features.Features.from_npz(dict(data))
    extracted = matcher.extract((crops or annotation_crop)(annotation))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **extracted.to_npz())  # type: ignore[arg-type]
    feature_set = LocalFeatureSet(
        annotation=annotation, extractor=matcher.key, keypoints=len(extracted.keypoints)
    )
    feature_set.file.save(f"{annotation.pk}-{matcher.name}.npz", ContentFile(buffer.getvalue()), save=False)
    try:
        with transaction.atomic():
            feature_set.save()
    except IntegrityError:
        feature_set.file.delete(save=False)  # another worker stored them first: keep theirs
    return extracted
