"""Detector-proposed boxes: with a detector configured, a photo gets animal boxes that curators accept into
annotations on the sighting page (a small randomly initialised torchvision model stands in for the COCO
weights a real instance downloads; it is the same architecture and file format)."""

from __future__ import annotations

from pathlib import Path

import torch
from django.test import Client
from torchvision.models import detection

from identification import tasks
from identification.matching import loaded
from ml_service import segmentation
from tests.conftest import World


def tiny_detector(tmp_path: Path) -> str:
    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    path = tmp_path / "tiny-detector.pth"
    torch.save(model.state_dict(), path)
    return f"torchvision:ssdlite320_mobilenet_v3_large:{path}:3"


def test_detector_configuration_is_parsed(tmp_path: Path) -> None:
    spec = tiny_detector(tmp_path)
    detector = segmentation.get_detector(spec)
    assert isinstance(detector, segmentation.TorchvisionDetector)
    assert (detector.architecture, detector.num_classes) == ("ssdlite320_mobilenet_v3_large", 3)
    assert detector.labels == {1: "animal", 2: "animal"}
    coco = segmentation.get_detector("torchvision:fasterrcnn_mobilenet_v3_large_fpn:/models/coco.pth")
    assert isinstance(coco, segmentation.TorchvisionDetector)
    assert coco.num_classes == 91 and coco.labels == segmentation.COCO_ANIMALS


def test_new_photos_get_proposals_that_the_sighting_page_offers(
    world: World, tmp_path: Path, settings
) -> None:
    settings.RESIGHT_DETECTOR = tiny_detector(tmp_path)
    settings.RESIGHT_DETECTOR_MIN_CONFIDENCE = 0.0  # a random model's scores are low
    loaded.detector.cache_clear()
    client = Client()
    client.force_login(world.users["contributor"])
    waiting = client.get(f"/sightings/{world.sighting.pk}/").content.decode()
    assert "Looking for animals" in waiting and 'hx-trigger="every 2s"' in waiting

    tasks.propose_boxes(world.asset.pk)
    world.asset.refresh_from_db()
    assert world.asset.proposals and world.asset.proposals_by.startswith("torchvision@")
    for proposal in world.asset.proposals:
        x, y, w, h = proposal["box"]
        assert min(x, y) >= 0 and x + w <= world.asset.width + 1 and y + h <= world.asset.height + 1
    tasks.propose_boxes(world.asset.pk)  # a redelivered task changes nothing
    page = client.get(f"/sightings/{world.sighting.pk}/").content.decode()
    assert "box proposal" in page and "Looking for animals" not in page.split('id="photos"')[1][:400]
    viewer = Client()
    viewer.force_login(world.users["viewer"])
    assert "box proposal" not in viewer.get(f"/sightings/{world.sighting.pk}/").content.decode()
