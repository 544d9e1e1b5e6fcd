"""Turning an annotation into model input: crop to the box, keep only the animal when a mask is given."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the EXIF-oriented image


@dataclass(frozen=True)
class Crop:
    """An RGB crop of one animal; `mask` (same size, bool) is True on the animal when known."""

    image: Image.Image
    mask: np.ndarray | None = None


def load_oriented(path_or_file: object) -> Image.Image:
    with Image.open(path_or_file) as image:  # type: ignore[arg-type]
        oriented = ImageOps.exif_transpose(image)
        return oriented.convert("RGB")


def crop(image: Image.Image, box: Box | None = None, mask: np.ndarray | None = None) -> Crop:
    """Crop `image` to `box`. A full-image `mask` is cropped alongside."""
    if box is None:
        return Crop(image.convert("RGB"), mask)
    x, y, w, h = box
    region = image.crop((x, y, x + w, y + h)).convert("RGB")
    return Crop(region, None if mask is None else mask[y : y + h, x : x + w])


def mirrored(c: Crop) -> Crop:
    """The crop flipped left to right (with its mask), for orientation normalisation."""
    return Crop(ImageOps.mirror(c.image), None if c.mask is None else c.mask[:, ::-1].copy())


def masked_pixels(c: Crop, fill: tuple[int, int, int] = (124, 116, 104)) -> Image.Image:
    """The crop with the background replaced by a flat colour (ImageNet's mean), so it carries no signal."""
    if c.mask is None:
        return c.image
    array = np.asarray(c.image).copy()
    array[~c.mask.astype(bool)] = fill
    return Image.fromarray(array)
