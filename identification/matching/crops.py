"""The pixels of an annotation as matching sees them: the stored photo decoded and EXIF-oriented, the box
cut out and masked to the animal (the mask computed and stored on first use), mirrored onto the species'
canonical side; and the way back from crop pixels to photo pixels."""

from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from PIL import Image

from catalog import services as catalog_services
from catalog.models import Annotation, MediaAsset
from identification.matching import loaded
from ml_service import imaging


class PhotoUnreadable(ValueError):
    """The stored photo cannot be decoded any more (damaged storage, truncated copy)."""


def photo(asset: MediaAsset) -> Image.Image:
    """The stored original, EXIF-oriented; PhotoUnreadable when storage holds no decodable image any more."""
    try:
        with asset.file.open("rb") as f:
            return imaging.load_oriented(io.BytesIO(f.read()))
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoUnreadable(
            f"photo {asset.pk} ({asset.original_filename}) cannot be decoded: {exc}"
        ) from exc


def crop_of(annotation: Annotation) -> imaging.Crop:
    """The annotation's box, masked to the animal. A missing mask is computed (and stored) first, so every
    embedding and feature set of an annotation is made from the same pixels."""
    image = photo(annotation.media_asset)
    mask = None
    if annotation.mask:
        try:
            with annotation.mask.open("rb") as f, Image.open(f) as m:
                mask = np.asarray(m.convert("L")) > 127
        except (OSError, SyntaxError, ValueError) as exc:
            raise PhotoUnreadable(f"the mask of annotation {annotation.pk} cannot be read: {exc}") from exc
    if mask is None and settings.RESIGHT_MASK_REFINER:
        mask = _refine_and_store(annotation, image)
    crop = imaging.crop(image, annotation.box, mask)
    return imaging.mirrored(crop) if matching_viewpoint(annotation)[1] else crop


def to_photo_pixels(annotation: Annotation, points: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """Keypoints of the annotation's crop (as extracted, at `crop_size`) in the pixels of its photo: undo the
    extractor's resizing, the mirroring, and the crop offset."""
    x, y, w, h = annotation.box
    out = points.astype(np.float64) * (w / crop_size[0], h / crop_size[1])
    if matching_viewpoint(annotation)[1]:
        out[:, 0] = w - out[:, 0]
    return out + np.array([x, y], dtype=np.float64)


OPPOSITE_SIDE = {"left": "right", "right": "left"}


def matching_viewpoint(annotation: Annotation) -> tuple[str, bool]:
    """The viewpoint an annotation is matched as, and whether its crop is mirrored to get there: species with
    a canonical side have the other side mirrored onto it, so both sides search (and are found) together."""
    canonical = annotation.species.canonical_viewpoint
    if canonical and annotation.viewpoint == OPPOSITE_SIDE.get(canonical):
        return canonical, True
    return annotation.viewpoint, False


class Crops:
    """Annotation crops decoded at most once within one unit of work (a job, a task): embedding and local
    features of the same annotation then share one decode of the original. Keep one per job, not per process:
    it holds every crop it made."""

    def __init__(self) -> None:
        self._made: dict[int, imaging.Crop] = {}

    def __call__(self, annotation: Annotation) -> imaging.Crop:
        if annotation.pk not in self._made:
            self._made[annotation.pk] = crop_of(annotation)
        return self._made[annotation.pk]


def _refine_and_store(annotation: Annotation, image: Image.Image) -> np.ndarray:
    refiner = loaded.mask_refiner(settings.RESIGHT_MASK_REFINER)
    mask = refiner.refine(image, annotation.box)
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG", optimize=True)
    catalog_services.annotation_set_mask(annotation=annotation, png=buffer.getvalue(), source=refiner.key)
    return mask
