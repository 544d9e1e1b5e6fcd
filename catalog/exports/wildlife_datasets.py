"""A project's annotated photos in the layout of the re-identification community's `wildlife-datasets`
package: a zip of `images/` and `metadata.csv` with one row per annotated animal: `image_id`, `identity`
("unknown" when unidentified), `path`, `bbox` ([x, y, width, height] in photo pixels), `date`, `species`,
`orientation` (the viewpoint), plus what Resight needs to rebuild the catalogue (`body_part`, `sighting`,
`time_zone`, `latitude`, `longitude`, `location_name`). The bulk upload reads the same CSV back (its column
aliases know `identity`, `orientation` and `bbox`), so export then import round-trips a catalogue.

Nothing leaves with more precision than the exporting user may see: blurred places stay blurred, and the
photos of a blurred sighting go out re-encoded without their EXIF (which holds the GPS position)."""

from __future__ import annotations

import csv
import io
import json
import posixpath
import zipfile
import zoneinfo

from PIL import Image, ImageOps

from catalog import selectors
from catalog.models import Annotation, MediaAsset
from resight.models import Project
from resight.permissions import Action, AnyUser

COLUMNS = [
    "image_id",
    "identity",
    "path",
    "bbox",
    "date",
    "species",
    "orientation",
    "body_part",
    "sighting",
    "time_zone",
    "latitude",
    "longitude",
    "location_name",
]
UNKNOWN_IDENTITY = "unknown"  # wildlife-datasets' word for an unidentified animal


def annotated(user: AnyUser, project: Project) -> list[Annotation]:
    return list(
        selectors.annotations_for(user, Action.EXPORT)
        .filter(sighting__project=project)
        .select_related("sighting", "media_asset", "individual", "species")
        .order_by("sighting__observed_at", "sighting_id", "media_asset_id", "pk")
    )


def archive(user: AnyUser, project: Project) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        records = [record for _, record in write_photos(zf, user, project)]
        zf.writestr("metadata.csv", to_csv(records))
    return buffer.getvalue()


def write_photos(
    zf: zipfile.ZipFile, user: AnyUser, project: Project
) -> list[tuple[Annotation, dict[str, str]]]:
    """Put each annotated photo the user may export into `zf` once (under images/); each annotation with
    its record (the CSV's columns). The COCO export shares it."""
    written: set[int] = set()
    records = []
    for annotation in annotated(user, project):
        asset = annotation.media_asset
        where = selectors.sighting_location(user, annotation.sighting)
        path = image_path(asset)
        if asset.pk not in written:
            written.add(asset.pk)
            zf.writestr(path, photo_bytes(asset, keep_exif=not where.blurred))
        records.append((annotation, record(annotation, path, where)))
    return records


def to_csv(records: list[dict[str, str]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return text.getvalue()


def image_path(asset: MediaAsset) -> str:
    """Unique within the archive (the asset's id) and recognisable (its uploaded name)."""
    name = posixpath.basename(asset.original_filename.replace("\\", "/")) or f"{asset.pk}.jpg"
    return f"images/{asset.pk}-{name}"


def record(annotation: Annotation, path: str, where: selectors.Location) -> dict[str, str]:
    sighting = annotation.sighting
    individual = annotation.individual
    zone = zoneinfo.ZoneInfo(sighting.time_zone)
    values = {
        "image_id": str(annotation.pk),
        "identity": individual.code if individual else UNKNOWN_IDENTITY,
        "path": path,
        "bbox": json.dumps(list(annotation.box)),
        "date": sighting.observed_at.astimezone(zone).isoformat(timespec="seconds"),
        "species": annotation.species.scientific_name,
        "orientation": annotation.viewpoint,
        "body_part": annotation.body_part,
        "sighting": str(sighting.pk),
        "time_zone": sighting.time_zone,
        "latitude": "" if where.latitude is None else repr(where.latitude),
        "longitude": "" if where.longitude is None else repr(where.longitude),
        "location_name": where.name,
    }
    return values


def photo_bytes(asset: MediaAsset, keep_exif: bool) -> bytes:
    with asset.file.open("rb") as f:
        data = f.read()
    if keep_exif:
        return data
    # Re-encoded from the pixels alone: no EXIF (GPS, camera serials) and no other metadata survives.
    # Turned as the EXIF said first, so the boxes (in the upright photo's pixels) still fit.
    with Image.open(io.BytesIO(data)) as image:
        clean = io.BytesIO()
        ImageOps.exif_transpose(image).convert("RGB").save(clean, format="JPEG", quality=95)
    return clean.getvalue()
