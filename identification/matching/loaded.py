"""The ML models a worker process uses, loaded once per process and reused (embedding networks, local
matchers, detectors, mask refiners), configured from the settings."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings

from identification.models import EmbeddingSpace
from ml_service import embedding, local_features, segmentation


@cache
def embedding_model(name: str) -> embedding.EmbeddingModel:
    model = embedding.get_model(name, bf16=settings.RESIGHT_EMBEDDING_BF16)
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
