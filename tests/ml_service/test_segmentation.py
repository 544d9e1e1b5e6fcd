"""Mask refinement keeps each annotation to the animal; detectors honour the interface."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from catalog import synthetic
from ml_service import imaging, local_features, segmentation, weights


def photo(individual: int, seed: int) -> tuple[Image.Image, synthetic.Photo]:
    shot = synthetic.render(synthetic.make_pattern(individual), seed=seed, size=(800, 600))
    return Image.open(io.BytesIO(shot.jpeg)).convert("RGB"), shot


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grabcut_mask_follows_the_animal(seed: int) -> None:
    image, shot = photo(10 + seed, seed)
    truth = np.asarray(shot.mask) > 127
    mask = segmentation.get_refiner("grabcut").refine(image, shot.box)
    assert mask.shape == truth.shape and mask.dtype == bool
    iou = (mask & truth).sum() / (mask | truth).sum()
    box = np.zeros_like(truth)
    x, y, w, h = shot.box
    box[y : y + h, x : x + w] = True
    box_iou = (box & truth).sum() / (box | truth).sum()
    assert iou > 0.7 and iou > box_iou + 0.15, (iou, box_iou)
    assert not (mask & ~box).any()  # never outside the annotation's box


def test_masked_keypoints_stay_off_the_background() -> None:
    image, shot = photo(21, 5)
    truth = np.asarray(shot.mask) > 127
    # Clutter behind the animal (twigs, stones: high-contrast texture) that attracts keypoints.
    rng = np.random.default_rng(0)
    palette = np.array([(35, 70, 25), (165, 185, 145), (90, 110, 60)], dtype=np.uint8)  # leaves, stones
    clutter = palette[np.kron(rng.integers(0, 3, size=(75, 100)), np.ones((8, 8), int))]
    pixels = np.asarray(image).copy()
    pixels[~truth] = clutter[~truth]
    image = Image.fromarray(pixels)
    mask = segmentation.get_refiner("grabcut").refine(image, shot.box)
    sift = local_features.get_matcher("sift")
    x, y = shot.box[:2]

    def on_animal(features: local_features.Features) -> float:
        px = np.clip(features.keypoints[:, 0].round().astype(int) + x, 0, truth.shape[1] - 1)
        py = np.clip(features.keypoints[:, 1].round().astype(int) + y, 0, truth.shape[0] - 1)
        return float(truth[py, px].mean())

    plain = sift.extract(imaging.crop(image, shot.box))
    masked = sift.extract(imaging.crop(image, shot.box, mask))
    # Clutter inside the box attracts keypoints, which the mask removes (those left sit on the outline).
    assert on_animal(plain) < 0.8
    assert on_animal(masked) > 0.9
    assert on_animal(masked) > on_animal(plain) + 0.15
    assert len(masked.keypoints) >= 50


def test_grabcut_is_deterministic_and_handles_tiny_boxes() -> None:
    image, shot = photo(30, 7)
    refiner = segmentation.get_refiner("grabcut")
    assert np.array_equal(refiner.refine(image, shot.box), refiner.refine(image, shot.box))
    tiny = refiner.refine(image, (10, 10, 5, 4))
    assert tiny.sum() == 20  # too small to model: the box itself


def test_torchvision_detector_loads_local_weights_and_returns_boxes(tmp_path) -> None:
    """A small randomly initialised SSDlite saved as a state dict stands in for published COCO weights."""
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path / "tiny-detector.pth"
    torch.save(model.state_dict(), path)
    detector = segmentation.TorchvisionDetector(
        "ssdlite320_mobilenet_v3_large", path, num_classes=3, labels={1: "animal", 2: "animal"}
    )
    image, _ = photo(40, 9)
    (found,) = detector.detect([image], min_confidence=0.0)
    assert found, "a random model still scores every anchor"
    for d in found:
        x, y, w, h = d.box
        assert 0 <= x < 800 and 0 <= y < 600 and w >= 1 and h >= 1
        assert d.label == "animal" and 0.0 <= d.confidence <= 1.0
    assert detector.detect([image], min_confidence=1.01) == [[]]
    assert detector.key.startswith("torchvision@ssdlite320_mobilenet_v3_large")


class FixedYolo(torch.nn.Module):
    """A stand-in for an exported MegaDetector: a fixed set of YOLO output rows on a 320 px input, except
    that the first box's objectness (YOLOv5) or animal score (YOLOv8) is the input's mean pixel value, so the
    test also sees what the detector fed the network (scaling to 0-1 and the grey letterbox padding)."""

    rows: torch.Tensor
    brightness: torch.Tensor

    def __init__(self, layout: str) -> None:
        super().__init__()
        # centre x, centre y, w, h, objectness, animal, person, vehicle (in 320 px input coordinates)
        rows = torch.tensor(
            [
                [160.0, 160, 100, 60, 0.0, 0.8, 0.1, 0.1],  # the animal; objectness = input mean
                [165.0, 162, 100, 60, 0.5, 0.7, 0.1, 0.1],  # the same animal again, weaker: suppressed
                [60.0, 60, 40, 40, 0.9, 0.1, 0.9, 0.1],  # a person: never proposed
                [250.0, 200, 40, 40, 0.1, 0.5, 0.0, 0.0],  # an animal below the confidence threshold
            ]
        )
        brightness = torch.zeros_like(rows)
        brightness[0, 4] = 1.0
        if layout == "yolov8":  # no objectness, one column per box
            rows[:, 5:] *= rows[:, 4:5]
            rows[0, 5], brightness[0, 5] = 0.0, 1.0
            rows, brightness = rows[:, [0, 1, 2, 3, 5, 6, 7]].T, brightness[:, [0, 1, 2, 3, 5, 6, 7]].T
        self.register_buffer("rows", rows)
        self.register_buffer("brightness", brightness)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.rows + images.mean() * self.brightness).unsqueeze(0)


@pytest.mark.parametrize("layout", ["yolov5", "yolov8"])
def test_megadetector_onnx_letterboxes_decodes_and_keeps_animals(tmp_path, layout: str) -> None:
    path = tmp_path / f"md-{layout}.onnx"
    program = torch.onnx.export(
        FixedYolo(layout).eval(), (torch.zeros(1, 3, 320, 320),), dynamo=True, verbose=False
    )
    assert program is not None
    program.save(str(path))
    detector = segmentation.get_detector(f"megadetector:{path}")
    assert isinstance(detector, segmentation.YoloOnnxDetector) and detector.key.startswith("megadetector@")

    white = Image.new("RGB", (640, 480), (255, 255, 255))
    (found,) = detector.detect([white], min_confidence=0.2)
    # 640x480 -> 320x240 at scale 0.5, 40 px of grey above and below: the animal's box maps back exactly.
    assert [d.box for d in found] == [(220, 180, 200, 120)]
    mean = (320 * 240 * 1.0 + 320 * 80 * 114 / 255) / (320 * 320)
    expected = mean * 0.8 if layout == "yolov5" else mean
    assert found[0].label == "animal" and found[0].confidence == pytest.approx(expected, abs=1e-3)
    assert detector.detect([white, white], min_confidence=0.99) == [[], []]


def test_yolo_onnx_configuration_is_parsed(tmp_path) -> None:
    detector = segmentation.get_detector("yolo-onnx:/models/traps.onnx:deer,boar,person")
    assert isinstance(detector, segmentation.YoloOnnxDetector)
    assert detector.classes == ("deer", "boar", "person") and detector.name == "yolo-onnx"
    with pytest.raises(ValueError, match="class names"):
        segmentation.get_detector("yolo-onnx:/models/traps.onnx")
    with pytest.raises(FileNotFoundError):
        segmentation.get_detector(f"megadetector:{tmp_path / 'missing.onnx'}").detect(
            [Image.new("RGB", (8, 8))]
        )


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised SAM ViT-B saved as published checkpoints are (a plain state dict)."""
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_random.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    return path


def test_sam_refiner_loads_a_checkpoint_and_keeps_masks_inside_the_box(sam_checkpoint: Path) -> None:
    refiner = segmentation.get_refiner(f"sam:{sam_checkpoint}")
    assert isinstance(refiner, segmentation.SamRefiner) and refiner.variant == "vit_b"
    assert refiner.key == "sam@vit_b-sam_vit_b_random"
    image, shot = photo(50, 3)
    mask = refiner.refine(image, shot.box)
    x, y, w, h = shot.box
    box = np.zeros((600, 800), bool)
    box[y : y + h, x : x + w] = True
    assert mask.shape == (600, 800) and mask.dtype == bool
    assert mask.any() and not (mask & ~box).any()  # random weights segment something; never outside the box


def test_sam_configuration_errors_are_clear(sam_checkpoint: Path, tmp_path: Path) -> None:
    explicit = segmentation.get_refiner(f"sam:vit_b:{sam_checkpoint}")
    assert isinstance(explicit, segmentation.SamRefiner) and explicit.checkpoint == sam_checkpoint
    with pytest.raises(ValueError, match="Which SAM"):
        segmentation.get_refiner(f"sam:{tmp_path / 'weights.pth'}")
    missing = segmentation.get_refiner(f"sam:{tmp_path / 'sam_vit_h_4b8939.pth'}")
    assert isinstance(missing, segmentation.SamRefiner) and missing.variant == "vit_h"
    with pytest.raises(weights.WeightsMissing, match="not found"):
        missing.load()
    wrong = segmentation.get_refiner(f"sam:vit_l:{sam_checkpoint}")
    assert isinstance(wrong, segmentation.SamRefiner)
    with pytest.raises(ValueError, match="not a SAM vit_l checkpoint"):
        wrong.load()
