"""Fitting and finding the per-species fusion calibration (ml_service.fusion) from curated identities.

Pairs come from the curated catalogue itself: every identified annotation is a query against its shortlist
in the catalogue (other encounters only); a pair is positive when both annotations were confirmed as the same
individual. The fit is redone when the number of identified annotations of the species has grown by
REFIT_GROWTH since the last fit.

The fit also decides, by cross-validation over the curated individuals, whether the fused score ranks better
than the global one (ml_service.fusion: the stored params' `ranking` and `choice`), and measures the first
candidate's precision per confidence band on held-out individuals (`bands`): `band_precision` reads it.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import transaction

from catalog.models import Annotation, IdentificationMethod, Species
from identification.matching import loaded, search, store
from identification.models import EmbeddingSpace, SpeciesCalibration
from ml_service import fusion

MIN_POSITIVE_PAIRS = 10
REFIT_GROWTH = 0.2
MAX_QUERIES = 400  # bounds the cost of a refit on large catalogues
BAND_MIN_PAIRS = 200  # below this the measured precision per band is not shown
BAND_MIN_QUERIES = 30  # nor for a band that fewer held-out queries fell in


def matcher_for(species: Species) -> str:
    """The local matcher a species' jobs re-rank with, and its calibration is fitted for: none where the
    species is identified by the global embedding alone (Species.id_method)."""
    return "" if species.id_method == IdentificationMethod.GLOBAL else settings.RESIGHT_LOCAL_MATCHER


def fusion_model_for(species_id: int, space: EmbeddingSpace, matcher: str) -> fusion.FusionModel:
    stored = SpeciesCalibration.objects.filter(species_id=species_id, space=space, matcher=matcher).first()
    return fusion.FusionModel.from_dict(stored.params) if stored else fusion.prior_model()


def band_precision(species_id: int, space: EmbeddingSpace, matcher: str) -> dict[str, float] | None:
    """The share of first candidates that were right per band ({"excellent": 0.97, ...}, bands with at least
    BAND_MIN_QUERIES held-out queries), measured at the last refit on the species' curated pairs; None
    while the species has no fitted calibration of BAND_MIN_PAIRS pairs or no band was measured enough."""
    stored = SpeciesCalibration.objects.filter(species_id=species_id, space=space, matcher=matcher).first()
    if stored is None or stored.pairs < BAND_MIN_PAIRS:
        return None
    measured = fusion.FusionModel.from_dict(stored.params).band_precision(BAND_MIN_QUERIES)
    return measured or None


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
    query_of_pair: list[int] = []
    individual_of_pair: list[int] = []
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
            query_of_pair.append(query.pk)
            individual_of_pair.append(query.individual_id)  # type: ignore[arg-type]
            if matcher and query_features is not None:
                other = store.local_features_of(by_pk[n.annotation_id], matcher)
                inliers.append(matcher.match(query_features, other).inliers)
    positives = int(np.sum(same))
    if positives < MIN_POSITIVE_PAIRS or positives == len(same):
        return None
    scores: dict[str, list[float]] = {"cosine": cosine}
    if matcher:
        scores["inliers"] = inliers
    # Which ranking the species gets (fused only where it ranks better on held-out individuals), and the
    # precision per band, both cross-validated over the curated individuals.
    model = fusion.FusionModel.fit(scores, same, queries=query_of_pair, individuals=individual_of_pair)
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
