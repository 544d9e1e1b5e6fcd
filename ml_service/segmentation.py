"""Finding the animal: detectors propose boxes, mask refiners keep each annotation to the animal's pixels.

Masks are full-image boolean arrays; embeddings and local features are computed on the crop with the mask
applied, so the background (grass, a camera-trap post seen every night) carries no identity signal.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ml_service.identity import Versioned
from ml_service.imaging import Box


class MaskRefiner(Versioned, ABC):
    name: str
    version: str

    @abstractmethod
    def refine(self, image: Image.Image, box: Box) -> np.ndarray:
        """A boolean mask of `image`'s size, True on the animal inside `box`."""


class GrabCutRefiner(MaskRefiner):
    """OpenCV GrabCut seeded by the box: works offline, needs no weights. Runs on a copy no larger than
    `max_side` for speed; the mask is scaled back. Seeded, so the same input gives the same mask."""

    name = "grabcut"
    version = "rect-5it-512-v1"

    def __init__(self, iterations: int = 5, max_side: int = 512, margin: float = 0.1) -> None:
        self.iterations = iterations
        self.max_side = max_side
        self.margin = margin

    def refine(self, image: Image.Image, box: Box) -> np.ndarray:
        x, y, w, h = box
        W, H = image.size
        # GrabCut models the background from outside the rectangle: give it a margin of context.
        mx, my = round(w * self.margin), round(h * self.margin)
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(W, x + w + mx), min(H, y + h + my)
        region = np.asarray(image.convert("RGB").crop((x0, y0, x1, y1)))[:, :, ::-1]  # BGR for OpenCV
        scale = min(1.0, self.max_side / max(region.shape[:2]))
        small = (
            cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            if scale < 1
            else region
        )
        rect = (
            round((x - x0) * scale),
            round((y - y0) * scale),
            max(1, round(w * scale)),
            max(1, round(h * scale)),
        )
        mask = np.zeros(small.shape[:2], np.uint8)
        if min(rect[2], rect[3]) < 8 or (rect[2] >= small.shape[1] and rect[3] >= small.shape[0]):
            inside = np.ones(small.shape[:2], bool)  # no room for a background model: keep the whole box
        else:
            cv2.setRNGSeed(0)
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(
                np.ascontiguousarray(small), mask, rect, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT
            )
            inside = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
            if inside.sum() < 0.05 * rect[2] * rect[3]:
                inside = np.zeros_like(inside)  # GrabCut lost the animal: fall back to the box
                inside[rect[1] : rect[1] + rect[3], rect[0] : rect[0] + rect[2]] = True
        full = np.zeros((H, W), bool)
        restored = cv2.resize(inside.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        full[y0:y1, x0:x1] = restored.astype(bool)
        box_only = np.zeros((H, W), bool)
        box_only[y : y + h, x : x + w] = True
        return full & box_only


@dataclass(frozen=True)
class Detection:
    box: Box
    label: str
    confidence: float


class Detector(Versioned, ABC):
    """Proposes animal boxes in a photo. Identity (name, version), lazy load, batched detect."""

    name: str
    version: str

    @abstractmethod
    def detect(self, images: Sequence[Image.Image], min_confidence: float = 0.3) -> list[list[Detection]]: ...


# COCO categories that are animals (torchvision's detection label ids).
COCO_ANIMALS = {
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
}


class TorchvisionDetector(Detector):
    """A torchvision detection model (Faster R-CNN or SSDlite, COCO classes), keeping animal classes.

    `weights` is a local state-dict file: users online download torchvision's published COCO weights once
    (see README); the tests use a small randomly initialised model saved the same way."""

    name = "torchvision"

    def __init__(
        self,
        architecture: str,
        weights: str | Path,
        num_classes: int = 91,
        labels: dict[int, str] | None = None,
    ) -> None:
        self.architecture = architecture
        self.weights = Path(weights)
        self.num_classes = num_classes
        self.labels = COCO_ANIMALS if labels is None else labels
        self.version = f"{architecture}-{self.weights.stem}"
        self._model: torch.nn.Module | None = None
        self._lock = threading.Lock()

    def load(self) -> torch.nn.Module:
        with self._lock:
            if self._model is None:
                from torchvision.models import detection

                builder = getattr(detection, self.architecture)
                model = builder(weights=None, weights_backbone=None, num_classes=self.num_classes)
                model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True))
                self._model = model.eval()
            return self._model

    @torch.inference_mode()
    def detect(self, images: Sequence[Image.Image], min_confidence: float = 0.3) -> list[list[Detection]]:
        model = self.load()
        tensors = [
            torch.from_numpy(np.asarray(i.convert("RGB"), np.float32) / 255).permute(2, 0, 1) for i in images
        ]
        results = []
        for output in model(tensors):
            found = []
            for box, label, score in zip(output["boxes"], output["labels"], output["scores"], strict=True):
                name = self.labels.get(int(label))
                if name is None or float(score) < min_confidence:
                    continue
                x0, y0, x1, y1 = (float(v) for v in box)
                found.append(
                    Detection(
                        (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0))),
                        name,
                        float(score),
                    )
                )
            results.append(found)
        return results


def get_detector(spec: str) -> Detector:
    """A detector from its configuration string: `torchvision:<architecture>:<weights file>[:<classes>]`.
    With the COCO class count (91, the default) the COCO animal classes are kept; with another count (a model
    fine-tuned on camera-trap classes) every class but the background is an animal."""
    kind, _, rest = spec.partition(":")
    if kind != "torchvision":
        raise KeyError(f"Unknown detector {kind!r}; known: torchvision")
    architecture, _, rest = rest.partition(":")
    weights, _, classes = rest.rpartition(":") if rest.rsplit(":", 1)[-1].isdigit() else (rest, "", "")
    num_classes = int(classes) if classes else 91
    labels = None if num_classes == 91 else {i: "animal" for i in range(1, num_classes)}
    return TorchvisionDetector(architecture, weights, num_classes=num_classes, labels=labels)


REFINERS: dict[str, type[MaskRefiner]] = {GrabCutRefiner.name: GrabCutRefiner}


def get_refiner(name: str) -> MaskRefiner:
    try:
        return REFINERS[name]()
    except KeyError:
        raise KeyError(f"Unknown mask refiner {name!r}; known: {', '.join(sorted(REFINERS))}") from None
