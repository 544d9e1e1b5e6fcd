"""A project's annotations as COCO (the object-detection format most training code reads): a zip of
`images/` and `annotations.json` with `images` (size, capture time with offset, and Resight's sighting,
time zone and place), `annotations` (`bbox` as [x, y, width, height], `area`, the mask as an uncompressed
RLE `segmentation`, `viewpoint`, `body_part`, `identity`: the individual's code or null) and `categories`
(one per species, named by its scientific name).

`to_csv` turns such a document back into the wildlife-datasets CSV that Bulk upload reads, so a COCO export
imports into another project like any metadata file (catalog.bulk.services)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.utils import timezone
from PIL import Image

from catalog.exports import wildlife_datasets
from resight.models import LICENCE_URLS, Licence, Project
from resight.permissions import AnyUser

# Per image, the wildlife-datasets columns that describe the photo's sighting (COCO has no place for them).
IMAGE_FIELDS = ("sighting", "time_zone", "latitude", "longitude", "location_name")


def archive(user: AnyUser, project: Project) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        records = wildlife_datasets.write_photos(zf, user, project)
        zf.writestr("annotations.json", json.dumps(document(project, records), indent=1))
    return buffer.getvalue()


def document(project: Project, records: list[tuple[Any, dict[str, str]]]) -> dict[str, Any]:
    licence = Licence(project.licence)
    images: dict[int, dict[str, Any]] = {}
    categories: dict[int, dict[str, Any]] = {}
    annotations = []
    for annotation, record in records:
        asset, species = annotation.media_asset, annotation.species
        images.setdefault(
            asset.pk,
            {
                "id": asset.pk,
                "file_name": record["path"],
                "width": asset.width,
                "height": asset.height,
                "date_captured": record["date"],
                "license": 1,
                **{field: record[field] for field in IMAGE_FIELDS},
            },
        )
        categories.setdefault(
            species.pk,
            {
                "id": species.pk,
                "name": species.scientific_name,
                "common_name": species.common_name,
                "supercategory": "animal",
            },
        )
        x, y, w, h = annotation.box
        segmentation = mask_rle(annotation)
        annotations.append(
            {
                "id": annotation.pk,
                "image_id": asset.pk,
                "category_id": species.pk,
                "bbox": [x, y, w, h],
                # COCO's area is the segment's when there is one.
                "area": w * h if segmentation is None else int(sum(segmentation["counts"][1::2])),
                **({} if segmentation is None else {"segmentation": segmentation}),
                "iscrowd": 0,
                "viewpoint": annotation.viewpoint,
                "body_part": annotation.body_part,
                "identity": annotation.individual.code if annotation.individual else None,
            }
        )
    return {
        "info": {
            "description": f"{project.name} ({project.organization.name}): annotated animals",
            "contributor": project.holder,
            "date_created": timezone.now().isoformat(timespec="seconds"),
            "version": "1.0",
        },
        "licenses": [{"id": 1, "name": licence.label, "url": LICENCE_URLS[licence]}],
        "images": list(images.values()),
        "annotations": annotations,
        "categories": list(categories.values()),
    }


def mask_rle(annotation: Any) -> dict[str, Any] | None:
    """The annotation's mask (stored box-sized, or photo-sized) as COCO's uncompressed run-length encoding
    over the whole photo: {"size": [height, width], "counts": [...]} with runs in column-major order,
    starting with the background. None without a mask. (Written here: pycocotools would be a compiled
    dependency for a dozen lines.)"""
    if not annotation.mask:
        return None
    asset = annotation.media_asset
    x, y, w, h = annotation.box
    with annotation.mask.open("rb") as f, Image.open(f) as m:
        mask = np.asarray(m.convert("L")) > 127
    full = np.zeros((asset.height, asset.width), dtype=bool)
    if mask.shape == full.shape:
        full = mask
    else:
        part = mask[: min(h, asset.height - y), : min(w, asset.width - x)]
        full[y : y + part.shape[0], x : x + part.shape[1]] = part
    flat = full.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0, *counts]  # runs start with the background
    return {"size": [asset.height, asset.width], "counts": counts}


def to_csv(data: bytes) -> str:
    """A COCO document (as written above, or any with boxes and categories) as the wildlife-datasets CSV.
    A document that cannot be read is a ValidationError naming what is wrong."""
    try:
        doc = json.loads(data)
        images = {image["id"]: image for image in doc["images"]}
        categories = {category["id"]: category for category in doc["categories"]}
        records = []
        for annotation in doc["annotations"]:
            image = images[annotation["image_id"]]
            identity = annotation.get("identity")
            records.append(
                {
                    "image_id": str(annotation.get("id", "")),
                    "identity": str(identity) if identity else wildlife_datasets.UNKNOWN_IDENTITY,
                    "path": str(image["file_name"]),
                    "bbox": json.dumps(annotation["bbox"]),
                    "date": str(image.get("date_captured") or ""),
                    "species": str(categories[annotation["category_id"]]["name"]),
                    "orientation": str(annotation.get("viewpoint") or ""),
                    "body_part": str(annotation.get("body_part") or ""),
                    **{field: str(image.get(field) or "") for field in IMAGE_FIELDS},
                }
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            {
                "csv": [
                    f"The JSON file is not a COCO document with images, annotations and categories ({exc})."
                ]
            }
        ) from exc
    return wildlife_datasets.to_csv(records)
