"""Fusion does no harm: the fitted model ranks by the fused score only where that is cross-validated better
than the global score over individuals, records why, and counts the first candidate's outcome per band."""

from __future__ import annotations

import numpy as np

from ml_service import fusion


def opposite_halves(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of 40 queries (one per individual, 10 shortlisted pairs each). For the individuals of one fold
    local matches are telling (the right one has 30 verified matches, others about 2) and cosine puts a
    near-twin first in a third of the queries; for the other fold cosine is right and a near-twin has 30
    verified matches while the right one has 2. In sample fusion looks useful; on held-out individuals it
    ranks the decoys first."""
    rng = np.random.default_rng(seed)
    cosine, inliers, same, queries, owners = [], [], [], [], []
    ids = [f"i{n:02d}" for n in range(40)]
    fold = fusion.fold_of_individuals(ids)
    for n, owner in enumerate(ids):
        offset = rng.uniform(-0.2, 0.2)
        telling = fold[owner] == 0
        for k in range(10):
            right = k == 0
            if right:
                c, m = 0.6 + offset, (30 if telling else 2)
            elif k == 1:  # the near-twin
                c = 0.6 + offset + (0.02 if telling and n % 3 == 0 else -0.02)
                m = 2 if telling else 30
            else:
                c, m = 0.6 + offset - rng.uniform(0.05, 0.3), int(rng.integers(0, 4))
            cosine.append(c)
            inliers.append(m)
            same.append(right)
            queries.append(n)
            owners.append(owner)
    scores = {"cosine": np.array(cosine), "inliers": np.array(inliers, dtype=float)}
    return scores, np.array(same), np.array(queries), np.array(owners)


def test_fusion_falls_back_to_the_global_ranking_where_it_is_worse_on_held_out_individuals() -> None:
    scores, same, queries, owners = opposite_halves()
    model = fusion.FusionModel.fit(scores, same, queries=queries, individuals=owners)
    assert model.ranking == fusion.GLOBAL
    choice = model.choice
    assert choice["ranking"] == "global" and choice["queries"] == 40 and choice["folds"] == 2
    assert choice["fused_top1"] < choice["global_top1"]  # type: ignore[operator]
    assert "<= global" in str(choice["reason"])
    # The one call the pipeline makes gives the global score's calibrated probability (and the ranking)...
    p = model.predict(scores)
    assert np.allclose(p, model.calibrators["cosine"].predict(scores["cosine"]))
    assert not np.allclose(p, model.fused_probability(scores))
    # ... and "probably new" follows that probability.
    first = fusion.aggregate(["a", "b"], ["x", "y"], model.predict({"cosine": np.array([0.2, 0.1])}))
    assert fusion.probably_new(first) == (first[0].probability < fusion.NEW_INDIVIDUAL_BELOW)
    # The choice, its figures and the per-band outcomes are stored and read back.
    stored = fusion.FusionModel.from_dict(model.to_dict())
    assert stored.ranking == "global" and stored.choice == choice and stored.bands == model.bands
    assert np.allclose(stored.predict(scores), p)
    assert sum(b["queries"] for b in model.bands.values()) == 40


def test_fusion_ranks_where_it_is_better_on_held_out_individuals() -> None:
    scores, same, queries, owners = opposite_halves()
    helpful = np.where(same, 30.0, np.minimum(scores["inliers"], 3.0))  # telling for every individual
    n = np.arange(len(same)) // 10
    cosine = scores["cosine"] + np.where(~same & (np.arange(len(same)) % 10 == 1) & (n % 3 == 0), 0.05, 0.0)
    fitted = {"cosine": cosine, "inliers": helpful}
    model = fusion.FusionModel.fit(fitted, same, queries=queries, individuals=owners)
    assert model.ranking == fusion.FUSED
    assert model.choice["fused_top1"] > model.choice["global_top1"]  # type: ignore[operator]
    assert np.allclose(model.predict(fitted), model.fused_probability(fitted))


def test_without_queries_or_local_evidence_the_choice_is_plain() -> None:
    scores, same, queries, owners = opposite_halves()
    unchecked = fusion.FusionModel.fit(scores, same)  # pairs alone: today's fused ranking, said so
    assert unchecked.ranking == fusion.FUSED and "not cross-validated" in str(unchecked.choice["reason"])
    cosine_only = fusion.FusionModel.fit(
        {"cosine": scores["cosine"]}, same, queries=queries, individuals=owners
    )
    assert cosine_only.ranking == fusion.GLOBAL and cosine_only.choice["fused_top1"] is None
    # Calibrations stored before the choice existed keep ranking by the fused probability.
    legacy = {k: v for k, v in unchecked.to_dict().items() if k not in ("ranking", "choice", "bands")}
    assert fusion.FusionModel.from_dict(legacy).ranking == fusion.FUSED
    assert fusion.prior_model().ranking == fusion.FUSED


def test_band_precision_needs_enough_queries_per_band() -> None:
    model = fusion.FusionModel(
        bands={"excellent": {"queries": 40, "right": 38}, "good": {"queries": 10, "right": 9}}
    )
    assert model.band_precision(min_queries=30) == {"excellent": 0.95}
    assert fusion.band_counts([0.99, 0.97, 0.6, 0.1], [True, False, True, False]) == {
        "excellent": {"queries": 2, "right": 1},
        "good": {"queries": 0, "right": 0},
        "fair": {"queries": 1, "right": 1},
        "uncertain": {"queries": 1, "right": 0},
    }
