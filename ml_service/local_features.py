"""Local features and matchers with geometric verification.

Features are extracted once per annotation (on its crop, background masked out when a mask is known) and
cached by the caller under `extractor.key`; matching takes two feature sets and returns verified inliers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from ml_service.imaging import Crop


@dataclass(frozen=True)
class Features:
    keypoints: np.ndarray  # (N, 2) float32, pixel coordinates in the crop
    descriptors: np.ndarray  # (N, D)
    image_size: tuple[int, int]  # width, height of the crop the keypoints refer to

    def to_npz(self) -> dict[str, np.ndarray]:
        return {
            "keypoints": self.keypoints,
            "descriptors": self.descriptors,
            "image_size": np.asarray(self.image_size),
        }

    @classmethod
    def from_npz(cls, data: dict[str, np.ndarray]) -> Features:
        w, h = (int(v) for v in data["image_size"])
        return cls(data["keypoints"], data["descriptors"], (w, h))


@dataclass(frozen=True)
class Match:
    inliers: int
    matches: int
    confidence: float  # mean matcher confidence of the inliers (1 where the matcher gives none)
    pairs: np.ndarray  # (inliers, 4): x1, y1, x2, y2 of verified matches, for drawing


def _verify(points_a: np.ndarray, points_b: np.ndarray, scores: np.ndarray) -> Match:
    """RANSAC on a fundamental matrix: animals are not planar, so a homography would reject good matches."""
    n = len(points_a)
    if n < 8:
        return Match(0, n, 0.0, np.zeros((0, 4), np.float32))
    try:
        _, inlier_mask = cv2.findFundamentalMat(points_a, points_b, cv2.FM_RANSAC, 3.0, 0.999, 2000)
    except cv2.error:  # degenerate point sets (all collinear, duplicates): no geometry to verify
        inlier_mask = None
    if inlier_mask is None:
        return Match(0, n, 0.0, np.zeros((0, 4), np.float32))
    keep = inlier_mask.ravel().astype(bool)
    pairs = np.hstack([points_a[keep], points_b[keep]]).astype(np.float32)
    confidence = float(scores[keep].mean()) if keep.any() else 0.0
    return Match(int(keep.sum()), n, confidence, pairs)


class LocalMatcher(ABC):
    name: str
    version: str
    max_side = 512

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def _prepare(self, c: Crop) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Grey crop no longer than `max_side`, its mask, and the scale applied."""
        image = np.asarray(c.image.convert("L"))
        scale = min(1.0, self.max_side / max(image.shape))
        mask: np.ndarray | None = None if c.mask is None else c.mask.astype(np.uint8) * 255
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if mask is not None:
                mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        return image, mask, scale

    @abstractmethod
    def extract(self, c: Crop) -> Features: ...

    @abstractmethod
    def match(self, a: Features, b: Features) -> Match: ...


class SiftMatcher(LocalMatcher):
    """OpenCV SIFT with Lowe's ratio test: no weights, robust to large rotations."""

    name = "sift"
    version = "opencv-1024-r0.8-v1"

    def __init__(self, n_features: int = 1024, ratio: float = 0.8) -> None:
        self.n_features = n_features
        self.ratio = ratio
        self._sift = cv2.SIFT_create(nfeatures=n_features)  # type: ignore[attr-defined]

    def extract(self, c: Crop) -> Features:
        image, mask, scale = self._prepare(c)
        keypoints, descriptors = self._sift.detectAndCompute(image, mask)
        if descriptors is None:
            return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), c.image.size)
        points = np.array([k.pt for k in keypoints], dtype=np.float32) / scale
        # RootSIFT: Hellinger kernel on L1-normalised descriptors matches better than plain L2.
        descriptors = np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7)).astype(
            np.float32
        )
        return Features(points, descriptors, c.image.size)

    def match(self, a: Features, b: Features) -> Match:
        if len(a.descriptors) < 2 or len(b.descriptors) < 2:
            return Match(0, 0, 0.0, np.zeros((0, 4), np.float32))
        knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.descriptors, b.descriptors, k=2)
        good = [(m, n) for m, n in (p for p in knn if len(p) == 2) if m.distance < self.ratio * n.distance]
        if not good:
            return Match(0, 0, 0.0, np.zeros((0, 4), np.float32))
        points_a = np.array([a.keypoints[m.queryIdx] for m, _ in good], dtype=np.float32)
        points_b = np.array([b.keypoints[m.trainIdx] for m, _ in good], dtype=np.float32)
        scores = np.array([1.0 - m.distance / max(n.distance, 1e-6) for m, n in good], dtype=np.float32)
        return _verify(points_a, points_b, scores)


MATCHERS = {SiftMatcher.name: SiftMatcher}


def get_matcher(name: str) -> LocalMatcher:
    try:
        return MATCHERS[name]()
    except KeyError:
        raise KeyError(f"Unknown local matcher {name!r}; known: {', '.join(sorted(MATCHERS))}") from None
