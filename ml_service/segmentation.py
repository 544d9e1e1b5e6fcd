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
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

from ml_service import onnx_runtime
from ml_service.identity import Versioned
from ml_service.imaging import Box
from ml_service.inference import inference_mode, load_checkpoint
from ml_service.weights import WeightsMissing

# torch is imported where a model is loaded or run (in workers), never at import: see ml_service.inference.
if TYPE_CHECKING:
    import torch


class MaskRefiner(Versioned, ABC):
    name: str
    version: str

    @abstractmethod
    def refine(self, image: Image.Image, box: Box) -> np.ndarray:
        """A boolean mask of `image`'s size, True on the animal inside `box`."""

    @staticmethod
    def context(image: Image.Image, box: Box, margin: float) -> tuple[int, int, int, int]:
        """The box grown by `margin` of its size on each side, within the photo: (x0, y0, x1, y1)."""
        x, y, w, h = box
        mx, my = round(w * margin), round(h * margin)
        return max(0, x - mx), max(0, y - my), min(image.width, x + w + mx), min(image.height, y + h + my)

    @staticmethod
    def placed(
        region_mask: np.ndarray, region: tuple[int, int, int, int], box: Box, size: tuple[int, int]
    ) -> np.ndarray:
        """`region_mask` (of `region`, at any resolution) as a mask of the whole photo, kept inside `box`; the
        whole box when it kept under 5 % of it (the refiner lost the animal: better the box than nothing)."""
        (W, H), (x0, y0, x1, y1), (x, y, w, h) = size, region, box
        full = np.zeros((H, W), bool)
        restored = cv2.resize(
            region_mask.astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST
        )
        full[y0:y1, x0:x1] = restored.astype(bool)
        box_only = np.zeros((H, W), bool)
        box_only[y : y + h, x : x + w] = True
        mask = full & box_only
        return box_only if mask.sum() < 0.05 * box_only.sum() else mask


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
        # GrabCut models the background from outside the rectangle: give it a margin of context.
        x0, y0, x1, y1 = self.context(image, box, self.margin)
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
        return self.placed(inside, (x0, y0, x1, y1), box, image.size)


SAM_VARIANTS = ("vit_b", "vit_l", "vit_h")


class SamRefiner(MaskRefiner):
    """Segment Anything (Meta's `segment-anything`) prompted with the annotation's box, for users who download
    a published checkpoint (e.g. `sam_vit_b_01ec64.pth`): sharper outlines than GrabCut on cluttered scenes,
    meant for GPU workers (ViT-B takes ~15-30 s per annotation on a 2-core CPU, well under one on a GPU).
    SAM sees the box with a margin of context, cropped from the photo, so a small animal fills more of SAM's
    1,024 px input than in the whole photo."""

    name = "sam"

    def __init__(self, checkpoint: str | Path, variant: str | None = None, margin: float = 0.25) -> None:
        self.checkpoint = Path(checkpoint)
        found = [v for v in SAM_VARIANTS if v in self.checkpoint.name]
        self.variant = variant or (found[0] if found else "")
        if self.variant not in SAM_VARIANTS:
            raise ValueError(
                f"Which SAM is {self.checkpoint.name}? Name it as published (sam_vit_b_...) or configure "
                f"sam:<variant>:<file> with a variant of {', '.join(SAM_VARIANTS)}"
            )
        self.version = f"{self.variant}-{self.checkpoint.stem}"
        self.margin = margin
        self._predictor: Any = None
        self._lock = threading.Lock()  # a predictor holds one image at a time

    def load(self) -> Any:
        if self._predictor is None:
            from segment_anything import SamPredictor, sam_model_registry

            if not self.checkpoint.is_file():
                raise WeightsMissing(f"SAM checkpoint not found: {self.checkpoint}")
            # Built empty and filled here (not by segment-anything's own loader) to read the file with
            # weights_only and to say clearly when the file is another variant's.
            model = sam_model_registry[self.variant]()
            state = load_checkpoint(self.checkpoint)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise ValueError(f"{self.checkpoint.name} is not a SAM {self.variant} checkpoint") from exc
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self._predictor = SamPredictor(model.eval().to(device))
        return self._predictor

    @inference_mode
    def refine(self, image: Image.Image, box: Box) -> np.ndarray:
        x, y, w, h = box
        x0, y0, x1, y1 = self.context(image, box, self.margin)
        region = np.ascontiguousarray(np.asarray(image.convert("RGB").crop((x0, y0, x1, y1))))
        prompt = np.array([x - x0, y - y0, x - x0 + w, y - y0 + h], np.float32)
        with self._lock:
            predictor = self.load()
            predictor.set_image(region)
            masks, _, _ = predictor.predict(box=prompt, multimask_output=False)
        return self.placed(np.asarray(masks[0], bool), (x0, y0, x1, y1), box, image.size)


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
                model.load_state_dict(load_checkpoint(self.weights))
                self._model = model.eval()
            return self._model

    @inference_mode
    def detect(self, images: Sequence[Image.Image], min_confidence: float = 0.3) -> list[list[Detection]]:
        import torch

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


MEGADETECTOR_CLASSES = ("animal", "person", "vehicle")
NOT_ANIMALS = frozenset({"person", "vehicle"})


class YoloOnnxDetector(Detector):
    """A YOLO-family detector exported to ONNX and run by ONNX Runtime: MegaDetector (v5 is YOLOv5 with the
    classes animal, person, vehicle: `python export.py --weights md_v5a.0.0.pt --include onnx --img 1280` in
    YOLOv5's repository; v6's YOLOv9/RT-DETR-style models export the same way from their own tools) or any
    camera-trap YOLO model. ONNX rather than the checkpoints themselves: those are pickled model objects that
    need the YOLOv5 or ultralytics source tree (AGPL) importable to load.

    Both output layouts are read, told apart by the output's shape: YOLOv5 `[1, N, 5 + C]` (centre x, centre
    y, width, height, objectness, class scores) and YOLOv8 and later `[1, 4 + C, N]` (no objectness). Photos
    are letterboxed to the model's input size with grey (114) padding as in training, boxes are mapped back to
    photo pixels, and overlapping boxes of a class are suppressed (IoU 0.45). Classes named person or vehicle
    are dropped: only animals become proposals."""

    def __init__(
        self,
        weights: str | Path,
        classes: Sequence[str] = MEGADETECTOR_CLASSES,
        *,
        input_size: int = 1280,
        iou: float = 0.45,
    ) -> None:
        self.weights = Path(weights)
        self.classes = tuple(classes)
        self.name = "megadetector" if self.classes == MEGADETECTOR_CLASSES else "yolo-onnx"
        self.version = self.weights.stem
        self.input_size = input_size
        self.iou = iou
        self._session: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._session is None:
                if not self.weights.is_file():
                    raise FileNotFoundError(f"Detector weights not found: {self.weights}")
                self._session = onnx_runtime.cpu_session(self.weights)
            return self._session

    def _side(self, session: Any) -> int:
        height, width = session.get_inputs()[0].shape[2:]
        fixed = [s for s in (height, width) if isinstance(s, int)]
        return max(fixed) if fixed else self.input_size

    def letterbox(self, image: Image.Image, side: int) -> tuple[np.ndarray, float, int, int]:
        """The photo scaled into a `side` square, padded with grey: (NCHW float batch, scale, left, top)."""
        w, h = image.size
        scale = min(side / w, side / h)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        left, top = (side - new_w) // 2, (side - new_h) // 2
        canvas = Image.new("RGB", (side, side), (114, 114, 114))
        canvas.paste(image.convert("RGB").resize((new_w, new_h), Image.Resampling.BILINEAR), (left, top))
        pixels = np.asarray(canvas, np.float32).transpose(2, 0, 1)[None] / 255.0
        return np.ascontiguousarray(pixels), scale, left, top

    def decode(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes as centre-x, centre-y, w, h; best class index; its score) from either output layout."""
        rows = output[0]
        n_classes = len(self.classes)
        if rows.shape[1] != 5 + n_classes and rows.shape[0] == 4 + n_classes:
            rows = rows.T  # YOLOv8+: one column per box, no objectness
            scores = rows[:, 4:]
        elif rows.shape[1] == 5 + n_classes:
            scores = rows[:, 5:] * rows[:, 4:5]  # YOLOv5: class score times objectness
        else:
            raise ValueError(
                f"Detector output {tuple(output.shape)} fits neither YOLO layout for {n_classes} classes"
            )
        best = scores.argmax(axis=1)
        return rows[:, :4], best, scores[np.arange(len(rows)), best]

    @inference_mode
    def detect(self, images: Sequence[Image.Image], min_confidence: float = 0.3) -> list[list[Detection]]:
        import torch
        from torchvision.ops import batched_nms

        session = self.load()
        side = self._side(session)
        name = session.get_inputs()[0].name
        results = []
        for image in images:  # one at a time: exported YOLO models usually have a fixed batch of one
            pixels, scale, left, top = self.letterbox(image, side)
            centres, labels, scores = self.decode(session.run(None, {name: pixels})[0])
            animal = np.array([self.classes[i] not in NOT_ANIMALS for i in labels], bool)
            keep = (scores >= min_confidence) & animal
            centres, labels, scores = centres[keep], labels[keep], scores[keep]
            corners = np.concatenate(
                [centres[:, :2] - centres[:, 2:] / 2, centres[:, :2] + centres[:, 2:] / 2], 1
            )
            corners = (corners - np.array([left, top, left, top])) / scale
            w, h = image.size
            corners = np.clip(corners, 0, [w, h, w, h]).astype(np.float32)
            kept = batched_nms(
                torch.from_numpy(corners),
                torch.from_numpy(scores.astype(np.float32)),
                torch.from_numpy(labels.astype(np.int64)),
                self.iou,
            ).numpy()
            found = []
            for i in kept:
                x0, y0, x1, y1 = (float(v) for v in corners[i])
                if x1 - x0 < 1 or y1 - y0 < 1:
                    continue  # wholly inside the padding
                box = (round(x0), round(y0), max(1, round(x1 - x0)), max(1, round(y1 - y0)))
                found.append(Detection(box, self.classes[labels[i]], float(scores[i])))
            results.append(found)
        return results


def get_detector(spec: str) -> Detector:
    """A detector from its configuration string:

    - `megadetector:<model.onnx>`: MegaDetector exported to ONNX (classes animal, person, vehicle);
    - `yolo-onnx:<model.onnx>:<class,class,...>`: another YOLO model in ONNX, its class names in output order;
    - `torchvision:<architecture>:<weights file>[:<classes>]`: with the COCO class count (91, the default) the
      COCO animal classes are kept; with another count (a model fine-tuned on camera-trap classes) every class
      but the background is an animal."""
    kind, _, rest = spec.partition(":")
    if kind == "megadetector":
        return YoloOnnxDetector(rest)
    if kind == "yolo-onnx":
        path, _, names = rest.rpartition(":")
        if not path or "/" in names or not names:
            raise ValueError(f"yolo-onnx needs <model.onnx>:<class names>, got {rest!r}")
        return YoloOnnxDetector(path, [n.strip() for n in names.split(",")])
    if kind != "torchvision":
        raise KeyError(f"Unknown detector {kind!r}; known: megadetector, yolo-onnx, torchvision")
    architecture, _, rest = rest.partition(":")
    weights, _, classes = rest.rpartition(":") if rest.rsplit(":", 1)[-1].isdigit() else (rest, "", "")
    num_classes = int(classes) if classes else 91
    labels = None if num_classes == 91 else {i: "animal" for i in range(1, num_classes)}
    return TorchvisionDetector(architecture, weights, num_classes=num_classes, labels=labels)


REFINERS: dict[str, type[MaskRefiner]] = {GrabCutRefiner.name: GrabCutRefiner}


def get_refiner(name: str) -> MaskRefiner:
    """A refiner from its configuration: `grabcut`, or `sam:<checkpoint>` / `sam:<variant>:<checkpoint>`."""
    kind, _, rest = name.partition(":")
    if kind == SamRefiner.name:
        variant, _, path = rest.partition(":") if rest.split(":", 1)[0] in SAM_VARIANTS else ("", "", rest)
        return SamRefiner(path, variant or None)
    try:
        return REFINERS[name]()
    except KeyError:
        raise KeyError(f"Unknown mask refiner {name!r}; known: {', '.join(sorted(REFINERS))}") from None
