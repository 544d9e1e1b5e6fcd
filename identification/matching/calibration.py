"""Fitting and finding the per-species fusion calibration (ml_service.fusion) from curated identities.

Pairs come from the curated catalogue itself: every identified annotation is a query against its shortlist
in the catalogue (other encounters only); a pair is positive when both annotations were confirmed as the same
individual. The fit is redone when the number of identified annotations of the species has grown by
REFIT_GROWTH since the last fit.
"""

from __future__ import annotations

import numpy as np
from django.db import transaction

from catalog.models import Annotation
from identification.matching import loaded, search, store
from identification.models import EmbeddingSpace, SpeciesCalibration
from ml_service import fusion

MIN_POSITIVE_PAIRS = 10
REFIT_GROWTH = 0.2
MAX_QUERIES = 400  # bounds the cost of a refit on large catalogues


def fusion_model_for(species_id: int, space: EmbeddingSpace, matcher: str) -> fusion.FusionModel:
    stored = SpeciesCalibration.objects.filter(species_id=species_id, space=space, matcher=matcher).first()
    return fusion.FusionModel.from_dict(stored.params) if stored else fusion.prior_model()


def needs_refit(species_id: int, space: EmbeddingSpace, matcher: str) -> bool:
    identified = Annotation.objects.filter(species_id=species_id, individual__isnull=False).count()
    stored = SpeciesCalibration.objects.filter(species_id=species_id, space=space, matcher=matcher).first()
    if stored is None:
        return identified >= 2 * MIN_POSITIVE_PAIRS
    return identified >= stored.identified_annotations * (1 + REFIT_GROWTH)


def refit(
    species_id: int, space: EmbeddingSpace, matcher_key: str, shortlist: int = 20
) -> SpeciesCalibration | None:
    """Fit from curated pairs; None (and the prior stays in use) while there are too few positive pairs."""
    annotations = list(
        Annotation.objects.filter(species_id=species_id, individual__isnull=False)
        .select_related("media_asset")
        .order_by("pk")
    )
    vectors = store.embed(annotations, space, skip_unreadable=True)
    by_pk = {a.pk: a for a in annotations if a.pk in vectors}
    queries = list(by_pk.values())[:: max(1, len(by_pk) // MAX_QUERIES)]
    projects = tuple({a.media_asset.project_id for a in by_pk.values()})
    matcher = loaded.local_matcher(matcher_key) if matcher_key else None
    cosine: list[float] = []
    inliers: list[float] = []
    same: list[bool] = []
    for query in queries:
        # Other encounters only: two photos of one sighting are no evidence of a re-sighting.
        same_encounter = tuple(a.pk for a in by_pk.values() if a.sighting_id == query.sighting_id)
        flt = search.SearchFilter(
            species_id=species_id, project_ids=projects, exclude_annotation_ids=same_encounter
        )
        neighbours = search.nearest(space, vectors[query.pk], flt, k=shortlist)
        query_features = store.local_features_of(query, matcher) if matcher else None
        for n in neighbours:
            cosine.append(n.cosine)
            same.append(n.individual_id == query.individual_id)
            if matcher and query_features is not None:
                other = store.local_features_of(by_pk[n.annotation_id], matcher)
                inliers.append(matcher.match(query_features, other).inliers)
    positives = int(np.sum(same))
    if positives < MIN_POSITIVE_PAIRS or positives == len(same):
        return None
    scores: dict[str, list[float]] = {"cosine": cosine}
    if matcher:
        scores["inliers"] = inliers
    model = fusion.FusionModel.fit(scores, same)
    with transaction.atomic():
        calibration, _ = SpeciesCalibration.objects.update_or_create(
            species_id=species_id,
            space=space,
            matcher=matcher_key,
            defaults={
                "params": model.to_dict(),
                "pairs": len(same),
                "positives": positives,
                "identified_annotations": len(annotations),
            },
        )
    return calibration
