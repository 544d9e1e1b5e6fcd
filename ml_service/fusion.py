"""Calibrated fusion: scores -> P(same individual) -> one probability per candidate individual -> a band.

Each raw score (global cosine similarity, local inlier count) is turned into a probability by a monotone
calibrator fitted on curated pairs of the species (isotonic when there are enough pairs, logistic below that).
The calibrated probabilities are combined by a logistic regression on their logits, fitted on the same pairs:
per species, so the weight of local evidence is learnt where it helps (spotted flanks) and not where it does
not (dog faces). A candidate individual's probability is that of its best-matching annotation.

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
    """Per-species calibrators for each score plus non-negative fusion weights over their logits."""

    calibrators: dict[str, ScoreCalibrator] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    bias: float = 0.0

    @classmethod
    def fit(
        cls, scores: Mapping[str, Sequence[float] | np.ndarray], same: Sequence[bool] | np.ndarray
    ) -> FusionModel:
        """`scores[kind][i]` is pair i's raw score of that kind ("cosine", "inliers")."""
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
        z = np.full(len(next(iter(scores.values()))), self.bias, dtype=np.float64)
        for kind, weight in self.weights.items():
            if weight and kind in scores:
                z += weight * _logit(self.calibrators[kind].predict(scores[kind]))
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe description (isotonic maps as their breakpoints) for storing with the model version."""
        out: dict[str, object] = {"weights": self.weights, "bias": self.bias, "calibrators": {}}
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
        return cls(calibrators, dict(data["weights"]), float(data["bias"]))  # type: ignore[call-overload, arg-type]


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
