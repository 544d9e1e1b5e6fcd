"""Mask refinement keeps each annotation to the animal; detectors honour the interface."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from catalog import synthetic
from ml_service import imaging, local_features, segmentation


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
