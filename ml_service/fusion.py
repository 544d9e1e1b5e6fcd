"""Calibrated fusion: scores -> P(same individual) -> one probability per candidate individual -> a band.

Each raw score (global cosine similarity, local inlier count) is turned into a probability by a monotone
calibrator fitted on curated pairs of the species (isotonic when there are enough pairs, logistic below that).
The calibrated probabilities are combined by a logistic regression on their logits, fitted on the same pairs:
per species, so the weight of local evidence is learnt where it helps (spotted flanks) and not where it does
not (dog faces). A candidate individual's probability is that of its best-matching annotation.

Fusion does no harm: given the queries the pairs belong to, the fit cross-validates over individuals (two
folds: pairs of one half's queries fit, the other half's queries are ranked) whether the fused probability
ranks the right individual first more often than the global score does. Only then does the fused probability
rank; otherwise (ties included) the model ranks and calibrates by the global score alone, and local evidence
is only shown. The choice and its two figures are stored with the model (`choice`), with the first
candidate's cross-validated outcome per band (`bands`), so the precision a curator meets per band is known.

Bands (on the fused, calibrated probability) and the "probably new" verdict:
    Excellent  p >= 0.95
    Good       0.80 <= p < 0.95
    Fair       0.50 <= p < 0.80
    Uncertain  p < 0.50
The query is "probably a new individual" when no candidate reaches 0.50.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

ISOTONIC_MIN_PAIRS = 200  # below this an isotonic step function overfits; a logistic curve is used
EPS = 1e-4
NEW_INDIVIDUAL_BELOW = 0.5
CROSS_VALIDATION_FOLDS = 2
GLOBAL, FUSED = "global", "fused"  # the ranking a fitted model uses


class Band(enum.StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    UNCERTAIN = "uncertain"


BAND_THRESHOLDS: tuple[tuple[float, Band], ...] = (
    (0.95, Band.EXCELLENT),
    (0.80, Band.GOOD),
    (0.50, Band.FAIR),
)


def band(probability: float) -> Band:
    for threshold, name in BAND_THRESHOLDS:
        if probability >= threshold:
            return name
    return Band.UNCERTAIN


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _transform(kind: str, scores: np.ndarray) -> np.ndarray:
    """Inlier counts are heavy-tailed: calibrate on log(1 + n)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.log1p(np.maximum(scores, 0)) if kind == "inliers" else scores


@dataclass
class ScoreCalibrator:
    """Monotone map from one raw score to P(same individual)."""

    kind: str  # "cosine" or "inliers"
    method: str = "logistic"
    isotonic: IsotonicRegression | None = None
    slope: float = 1.0
    intercept: float = 0.0

    def fit(self, scores: Sequence[float] | np.ndarray, same: Sequence[bool] | np.ndarray) -> ScoreCalibrator:
        x, y = _transform(self.kind, np.asarray(scores)), np.asarray(same, dtype=int)
        if len(set(y.tolist())) < 2:
            raise ValueError("calibration needs pairs of both kinds (same and different individuals)")
        if len(x) >= ISOTONIC_MIN_PAIRS:
            self.method = "isotonic"
            self.isotonic = IsotonicRegression(
                y_min=EPS, y_max=1 - EPS, increasing=True, out_of_bounds="clip"
            )
            self.isotonic.fit(x, y)
        else:
            self.method = "logistic"
            model = LogisticRegression(C=10.0).fit(x.reshape(-1, 1), y)
            # A higher score never means a lower probability: a negative slope (noise) is clamped to flat.
            self.slope = max(float(model.coef_[0, 0]), 0.0)
            self.intercept = (
                float(model.intercept_[0]) if self.slope > 0 else float(_logit(np.array([y.mean()]))[0])
            )
        return self

    def predict(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        x = _transform(self.kind, np.asarray(scores))
        if self.method == "isotonic" and self.isotonic is not None:
            return np.asarray(self.isotonic.predict(x), dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-(self.slope * x + self.intercept)))


@dataclass
class FusionModel:
    """Per-species calibrators for each score plus non-negative fusion weights over their logits.

    `ranking` says which probability `predict` returns: "fused" (the weighted logits) or "global" (the cosine
    calibration alone, where fusion did not rank better on held-out individuals); `choice` records why and
    `bands` the cross-validated first-candidate outcomes per band ({band: {"queries": n, "right": k}})."""

    calibrators: dict[str, ScoreCalibrator] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0
    ranking: str = FUSED
    choice: dict[str, object] = field(default_factory=dict)
    bands: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        scores: Mapping[str, Sequence[float] | np.ndarray],
        same: Sequence[bool] | np.ndarray,
        *,
        queries: Sequence[object] | np.ndarray | None = None,
        individuals: Sequence[object] | np.ndarray | None = None,
    ) -> FusionModel:
        """`scores[kind][i]` is pair i's raw score of that kind ("cosine", "inliers"); `queries[i]` names the
        query pair i belongs to and `individuals[i]` that query's individual. Without them the fused ranking
        is used unchecked (today's pairs-only fit); with them the ranking is chosen by cross-validation."""
        model = cls._fit_fused(scores, same)
        if queries is None or individuals is None:
            model.choice = {
                "ranking": FUSED,
                "reason": "not cross-validated (pairs given without their queries)",
            }
            return model
        if "cosine" not in scores:
            raise ValueError("choosing the ranking needs the global (cosine) score of every pair")
        with_local = any(kind != "cosine" for kind in scores)
        held = _cross_validate(scores, same, queries, individuals, with_local)
        if held is None:
            model.ranking = GLOBAL
            model.choice = {
                "ranking": GLOBAL,
                "reason": "too few individuals or pairs to cross-validate: the global ranking stands",
            }
            return model
        mate = np.asarray(held.mate, dtype=bool)
        top1 = {
            r: 100.0 * float(np.mean(np.asarray(right, dtype=bool)[mate])) if mate.any() else 0.0
            for r, right in held.right.items()
        }
        if not with_local:
            ranking, reason = GLOBAL, "only the global score: nothing to fuse"
        elif not mate.any():
            ranking, reason = GLOBAL, "no query had its individual among its pairs: the global ranking stands"
        elif top1[FUSED] > top1[GLOBAL]:
            ranking = FUSED
            reason = f"cross-validated top-1 fused {top1[FUSED]:.1f} > global {top1[GLOBAL]:.1f}"
        else:
            ranking = GLOBAL
            reason = (
                f"cross-validated top-1 fused {top1[FUSED]:.1f} <= global {top1[GLOBAL]:.1f}: global ranks"
            )
        model.ranking = ranking
        model.choice = {
            "ranking": ranking,
            "reason": reason,
            "global_top1": top1[GLOBAL],
            "fused_top1": top1.get(FUSED),
            "queries": int(mate.sum()),
            "folds": CROSS_VALIDATION_FOLDS,
        }
        model.bands = band_counts(held.top[ranking], held.right[ranking])
        return model

    @classmethod
    def _fit_fused(
        cls, scores: Mapping[str, Sequence[float] | np.ndarray], same: Sequence[bool] | np.ndarray
    ) -> FusionModel:
        y = np.asarray(same, dtype=int)
        calibrators = {kind: ScoreCalibrator(kind).fit(values, same) for kind, values in scores.items()}
        kinds = sorted(calibrators)
        features = np.column_stack([_logit(calibrators[k].predict(scores[k])) for k in kinds])
        active = list(kinds)
        while True:  # drop evidence that gets a negative weight (it would invert a calibrated score)
            model = LogisticRegression(C=1.0).fit(features[:, [kinds.index(k) for k in active]], y)
            coefs = model.coef_[0]
            if (coefs >= 0).all() or len(active) == 1:
                break
            active.pop(int(np.argmin(coefs)))
        weights = {k: 0.0 for k in kinds} | {
            k: max(float(c), 0.0) for k, c in zip(active, coefs, strict=True)
        }
        return cls(calibrators, weights, float(model.intercept_[0]))

    def predict(self, scores: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
        """P(same individual) by the ranking in use: the one call the matching pipeline makes."""
        if self.ranking == GLOBAL and "cosine" in self.calibrators:
            return self.calibrators["cosine"].predict(scores["cosine"])
        return self.fused_probability(scores)

    def fused_probability(self, scores: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
        z = np.full(len(next(iter(scores.values()))), self.bias, dtype=np.float64)
        for kind, weight in self.weights.items():
            if weight and kind in scores:
                z += weight * _logit(self.calibrators[kind].predict(scores[kind]))
        return 1.0 / (1.0 + np.exp(-z))

    def band_precision(self, min_queries: int) -> dict[str, float]:
        """Cross-validated share of first candidates that were right, per band with `min_queries` or more."""
        return {
            b: counts["right"] / counts["queries"]
            for b, counts in self.bands.items()
            if counts["queries"] >= max(min_queries, 1)
        }

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe description (isotonic maps as their breakpoints) for storing with the model version."""
        out: dict[str, object] = {
            "weights": self.weights,
            "bias": self.bias,
            "calibrators": {},
            "ranking": self.ranking,
            "choice": self.choice,
            "bands": self.bands,
        }
        for kind, c in self.calibrators.items():
            entry: dict[str, object] = {"method": c.method, "slope": c.slope, "intercept": c.intercept}
            if c.isotonic is not None:
                entry["x"] = c.isotonic.X_thresholds_.tolist()
                entry["y"] = c.isotonic.y_thresholds_.tolist()
            out["calibrators"][kind] = entry  # type: ignore[index]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> FusionModel:
        calibrators = {}
        for kind, entry in data["calibrators"].items():  # type: ignore[attr-defined]
            c = ScoreCalibrator(kind, entry["method"], slope=entry["slope"], intercept=entry["intercept"])
            if entry["method"] == "isotonic":
                iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, increasing=True, out_of_bounds="clip")
                iso.fit(np.asarray(entry["x"]), np.asarray(entry["y"]))
                c.isotonic = iso
            calibrators[kind] = c
        return cls(
            calibrators,
            dict(data["weights"]),  # type: ignore[call-overload]
            float(data["bias"]),  # type: ignore[arg-type]
            # Stored before the choice existed: they ranked by the fused probability.
            str(data.get("ranking", FUSED)),
            dict(data.get("choice") or {}),  # type: ignore[call-overload]
            dict(data.get("bands") or {}),  # type: ignore[call-overload]
        )


@dataclass
class _HeldOut:
    """Per held-out query: whether its individual was among its pairs, and per ranking whether the first
    candidate was right and its probability."""

    mate: list[bool] = field(default_factory=list)
    right: dict[str, list[bool]] = field(default_factory=dict)
    top: dict[str, list[float]] = field(default_factory=dict)


def fold_of_individuals(individuals: Sequence[object] | np.ndarray) -> dict[str, int]:
    """Two folds over individuals, alternating in sorted order (as ml_service.evaluation cross-fits)."""
    ids = sorted({str(i) for i in individuals})
    return {ind: n % CROSS_VALIDATION_FOLDS for n, ind in enumerate(ids)}


def _cross_validate(
    scores: Mapping[str, Sequence[float] | np.ndarray],
    same: Sequence[bool] | np.ndarray,
    queries: Sequence[object] | np.ndarray,
    individuals: Sequence[object] | np.ndarray,
    with_local: bool,
) -> _HeldOut | None:
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    y = np.asarray(same, dtype=bool)
    query_keys = np.array([str(q) for q in queries])
    owners = np.array([str(i) for i in individuals])
    fold_of = fold_of_individuals(owners)
    if len(fold_of) < CROSS_VALIDATION_FOLDS:
        return None
    pair_fold = np.array([fold_of[o] for o in owners])
    rankings = (GLOBAL, FUSED) if with_local else (GLOBAL,)
    held = _HeldOut(right={r: [] for r in rankings}, top={r: [] for r in rankings})
    for fold in range(CROSS_VALIDATION_FOLDS):
        train, test = np.flatnonzero(pair_fold != fold), np.flatnonzero(pair_fold == fold)
        try:
            model = FusionModel._fit_fused({k: v[train] for k, v in arrays.items()}, y[train])
        except ValueError:  # a fold without pairs of both kinds
            return None
        test_scores = {k: v[test] for k, v in arrays.items()}
        probability = {GLOBAL: model.calibrators["cosine"].predict(test_scores["cosine"])}
        if with_local:
            probability[FUSED] = model.fused_probability(test_scores)
        cosine, truth = test_scores["cosine"], y[test]
        by_query: dict[str, list[int]] = {}
        for position, key in enumerate(query_keys[test]):
            by_query.setdefault(key, []).append(position)
        for rows in by_query.values():
            held.mate.append(bool(truth[rows].any()))
            for r in rankings:
                first = rows[int(np.lexsort((-cosine[rows], -probability[r][rows]))[0])]
                held.right[r].append(bool(truth[first]))
                held.top[r].append(float(probability[r][first]))
    return held


def band_counts(
    top_probability: Sequence[float] | np.ndarray, right: Sequence[bool] | np.ndarray
) -> dict[str, dict[str, int]]:
    """Per band, how many queries had their first candidate there and how many of those were right."""
    out = {b.value: {"queries": 0, "right": 0} for b in Band}
    for p, ok in zip(top_probability, right, strict=True):
        counts = out[band(float(p)).value]
        counts["queries"] += 1
        counts["right"] += int(bool(ok))
    return out


# Used until a species has enough curated pairs, then replaced by the fitted model: deliberately cautious
# curves for the ImageNet start (cosine 0.80 -> 0.5; 24 verified local matches -> 0.5), equally weighted,
# so local evidence counts for species matched by their patterns before any curation.
def prior_model() -> FusionModel:
    cosine = ScoreCalibrator("cosine", "logistic", slope=25.0, intercept=-20.0)
    inliers = ScoreCalibrator("inliers", "logistic", slope=2.2, intercept=-7.0)
    return FusionModel({"cosine": cosine, "inliers": inliers}, {"cosine": 1.0, "inliers": 1.0}, 0.0)


@dataclass(frozen=True)
class CandidateScore:
    individual: str
    annotation: str
    probability: float
    band: Band


def aggregate(
    annotation_ids: Sequence[str], individual_ids: Sequence[str], probabilities: np.ndarray
) -> list[CandidateScore]:
    """One row per individual (its best annotation), most probable first."""
    best: dict[str, tuple[float, str]] = {}
    for ann, ind, p in zip(annotation_ids, individual_ids, probabilities, strict=True):
        if ind not in best or p > best[ind][0]:
            best[ind] = (float(p), ann)
    rows = [CandidateScore(ind, ann, p, band(p)) for ind, (p, ann) in best.items()]
    return sorted(rows, key=lambda r: -r.probability)


def probably_new(candidates: Sequence[CandidateScore]) -> bool:
    return not candidates or candidates[0].probability < NEW_INDIVIDUAL_BELOW
