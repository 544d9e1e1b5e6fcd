"""Reads of the model registry: the vectors of an embedding space that a user may see (for its map)."""

from __future__ import annotations

import numpy as np

from catalog.models import Annotation
from identification.matching import search
from identification.models import AnnotationEmbedding, EmbeddingSpace
from resight.permissions import Action, AnyUser, scope


def space_vectors(
    user: AnyUser, space: EmbeddingSpace, species_id: int, limit: int
) -> tuple[np.ndarray, list[str]]:
    """Vectors of the identified annotations of a species in a space that `user` may see, with their
    individuals' codes (for the registry's embedding map)."""
    visible = scope(Annotation.objects.all(), user, Action.VIEW).filter(individual__isnull=False)
    rows = list(
        AnnotationEmbedding.objects.filter(space=space, species_id=species_id, annotation__in=visible)
        .order_by("annotation_id")
        .values_list("vector", "annotation__individual__code")[:limit]
    )
    vectors = np.array([search.as_array(v) for v, _ in rows]).reshape(len(rows), space.dim)
    return vectors, [code for _, code in rows]
