"""What matching computes for an annotation, persisted: its global embedding per embedding space (pgvector,
identification.matching.search) and its local features per extractor version (media storage)."""

from __future__ import annotations

import io
import logging

import numpy as np
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from catalog.models import Annotation
from identification.matching import search
from identification.matching.crops import Crops, PhotoUnreadable, crop_of, matching_viewpoint
from identification.matching.loaded import space_model
from identification.models import AnnotationEmbedding, EmbeddingSpace, LocalFeatureSet
from ml_service import local_features

logger = logging.getLogger(__name__)


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
        crop_of_one = crops or crop_of
        images = []
        for a in list(missing):
            try:
                images.append(crop_of_one(a))
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


def local_features_of(
    annotation: Annotation, matcher: local_features.LocalMatcher, crops: Crops | None = None
) -> local_features.Features:
    """Local features of the annotation's crop, extracted once per extractor version and cached in storage."""
    cached = LocalFeatureSet.objects.filter(annotation=annotation, extractor=matcher.key).first()
    if cached is not None:
        try:
            with cached.file.open("rb") as f, np.load(io.BytesIO(f.read())) as data:
                return local_features.Features.from_npz(dict(data))
        except FileNotFoundError:
            # Forgotten since the row was read (a redo of the annotation in another worker), or the file was
            # lost: extract them again rather than fail the search that needs them.
            logger.info("annotation %s: local features %s gone, extracting again", annotation.pk, cached.file)
            LocalFeatureSet.objects.filter(pk=cached.pk).delete()
    extracted = matcher.extract((crops or crop_of)(annotation))
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
