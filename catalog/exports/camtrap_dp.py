"""Camtrap DP 1.0 (the camera-trap data exchange standard of TDWG, read by Agouti, Wildlife Insights and
camtraptools): a zip of `datapackage.json`, `deployments.csv`, `media.csv`, `observations.csv` and the
photos under `media/`.

Resight has sightings rather than camera deployments: each sighting with a position is one deployment (its
place, its moment as start and end, its time zone in `deploymentTags`), each photo one media file, each
annotation one media-level animal observation (`individualID` the individual's code, the box normalised to
the photo, viewpoint and body part in `observationTags`). A sighting without a position has no deployment
and is left out (the package's description says how many).

Validation runs offline: the tables with frictionless against the vendored 1.0.2 table schemas (types,
required fields, enums, ranges, keys between the tables), `datapackage.json` with jsonschema against the
Camtrap DP part of the vendored profile. `to_csv` turns a package back into the wildlife-datasets CSV Bulk
upload reads, so an export imports into another project."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
import zoneinfo
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.exceptions
from django.utils import timezone
from PIL import Image, ImageOps
from referencing.jsonschema import DRAFT4

from catalog import selectors
from catalog.exports import wildlife_datasets
from catalog.models import Annotation
from resight.models import Licence, Project
from resight.permissions import AnyUser

VERSION = "1.0.2"
VENDOR = Path(__file__).with_name("vendor") / f"camtrap-dp-{VERSION}"
PROFILE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heif"}


def schema_url(table: str) -> str:
    return f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}/{table}-table-schema.json"


def table_schema(table: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((VENDOR / f"{table}-table-schema.json").read_text())
    return schema


def archive(user: AnyUser, project: Project) -> bytes:
    buffer = io.BytesIO()
    rows: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES}
    seen_sightings: set[int] = set()
    seen_assets: set[int] = set()
    left_out: set[int] = set()
    annotations = wildlife_datasets.annotated(user, project)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for annotation in annotations:
            sighting, asset = annotation.sighting, annotation.media_asset
            where = selectors.sighting_location(user, sighting)
            if where.latitude is None or where.longitude is None:
                left_out.add(sighting.pk)
                continue
            when = _local(sighting.observed_at, sighting.time_zone)
            deployment = f"sighting-{sighting.pk}"
            if sighting.pk not in seen_sightings:
                seen_sightings.add(sighting.pk)
                rows["deployments"].append(
                    {
                        "deploymentID": deployment,
                        "locationName": where.name,
                        "latitude": where.latitude,
                        "longitude": where.longitude,
                        "coordinateUncertainty": max(1, round(where.uncertainty_m))
                        if where.uncertainty_m
                        else "",
                        "deploymentStart": when,
                        "deploymentEnd": when,
                        "deploymentTags": f"time_zone:{sighting.time_zone}",
                        "deploymentComments": "Blurred: sensitive species" if where.blurred else "",
                    }
                )
            path = f"media/{wildlife_datasets.image_path(asset).split('/', 1)[1]}"
            if asset.pk not in seen_assets:
                seen_assets.add(asset.pk)
                zf.writestr(path, wildlife_datasets.photo_bytes(asset, keep_exif=not where.blurred))
                rows["media"].append(
                    {
                        "mediaID": f"photo-{asset.pk}",
                        "deploymentID": deployment,
                        "timestamp": when,
                        "filePath": path,
                        "filePublic": "false",
                        "fileName": asset.original_filename,
                        "fileMediatype": MEDIA_TYPES.get(asset.image_format.upper(), "image/jpeg"),
                    }
                )
            rows["observations"].append(_observation(annotation, deployment, when))
        for table in TABLES:
            zf.writestr(f"{table}.csv", _csv(table, rows[table]))
        zf.writestr("datapackage.json", json.dumps(_descriptor(project, annotations, left_out), indent=1))
    return buffer.getvalue()


def _observation(annotation: Annotation, deployment: str, when: str) -> dict[str, Any]:
    asset, individual = annotation.media_asset, annotation.individual
    x, y, w, h = annotation.box
    tags = [f"viewpoint:{annotation.viewpoint}"] + (
        [f"body_part:{annotation.body_part}"] if annotation.body_part else []
    )
    return {
        "observationID": f"annotation-{annotation.pk}",
        "deploymentID": deployment,
        "mediaID": f"photo-{asset.pk}",
        "eventID": deployment,
        "eventStart": when,
        "eventEnd": when,
        "observationLevel": "media",
        "observationType": "animal",
        "scientificName": annotation.species.scientific_name,
        "count": 1,
        "lifeStage": individual.life_stage
        if individual and individual.life_stage in ("adult", "subadult", "juvenile")
        else "",
        "sex": individual.sex if individual and individual.sex in ("female", "male") else "",
        "individualID": individual.code if individual else "",
        "bboxX": round(x / asset.width, 6),
        "bboxY": round(y / asset.height, 6),
        "bboxWidth": round(w / asset.width, 6),
        "bboxHeight": round(h / asset.height, 6),
        "classificationMethod": "human",
        "observationTags": " | ".join(tags),
    }


def _descriptor(project: Project, annotations: list[Annotation], left_out: set[int]) -> dict[str, Any]:
    kept = [a for a in annotations if a.sighting_id not in left_out]
    times = [a.sighting.observed_at for a in kept] or [timezone.now()]
    lats = [a.sighting.latitude for a in kept if a.sighting.latitude is not None] or [0.0]
    lons = [a.sighting.longitude for a in kept if a.sighting.longitude is not None] or [0.0]
    licence = Licence(project.licence)
    species = {a.species.scientific_name: a.species.common_name for a in kept}
    description = f"Sightings of individually identified animals from the Resight project {project.name}."
    if left_out:
        description += f" {len(left_out)} sighting(s) without a position are not included."
    return {
        "profile": PROFILE_URL,
        "name": f"{project.organization.slug}-{project.slug}".lower(),
        "title": project.name,
        "description": description,
        "created": timezone.now().isoformat(timespec="seconds"),
        "contributors": [{"title": project.holder, "role": "rightsHolder"}],
        "licenses": [
            {"name": licence.value, "scope": "data"},
            {"name": licence.value, "scope": "media"},
        ],
        "project": {
            "title": project.name,
            "id": str(project.pk),
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": True,
            "observationLevel": ["media"],
        },
        "spatial": _box_polygon(min(lats), min(lons), max(lats), max(lons)),
        "temporal": {"start": min(times).date().isoformat(), "end": max(times).date().isoformat()},
        "taxonomic": [
            {"scientificName": name, "vernacularNames": {"eng": common}}
            for name, common in sorted(species.items())
        ],
        "resources": [
            {
                "name": table,
                "path": f"{table}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schema_url(table),
            }
            for table in TABLES
        ],
    }


def _box_polygon(south: float, west: float, north: float, east: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "bbox": [west, south, east, north], "coordinates": [ring]}


def _local(when: dt.datetime, zone: str) -> str:
    return when.astimezone(zoneinfo.ZoneInfo(zone)).isoformat(timespec="seconds")


def _csv(table: str, rows: list[dict[str, Any]]) -> str:
    fields = [f["name"] for f in table_schema(table)["fields"]]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def validate(files: dict[str, bytes]) -> list[str]:
    """What is wrong with a Camtrap DP package given as {name: content}: the descriptor against the
    profile, the three tables against their schemas and the keys between them. Empty when valid."""
    from frictionless import Package, Resource, Schema  # heavy: imported when a package is validated

    problems: list[str] = []
    try:
        descriptor = json.loads(files["datapackage.json"])
    except (KeyError, ValueError) as exc:
        return [f"No readable datapackage.json ({exc})."]
    profile = json.loads((VENDOR / "camtrap-dp-profile.json").read_text())
    # The profile's first part is the generic Data Package schema (online); its Camtrap DP part is checked
    # here, the generic structure by frictionless below.
    profile["allOf"] = [part for part in profile["allOf"] if "$ref" not in part]
    validator = jsonschema.Draft202012Validator(profile, registry=_offline_registry())
    for error in validator.iter_errors(descriptor):
        problems.append(f"datapackage.json: {'/'.join(str(p) for p in error.path)}: {error.message}")
    resources = []
    for table in TABLES:
        if f"{table}.csv" not in files:
            problems.append(f"{table}.csv is missing.")
            continue
        resources.append(
            Resource(
                name=table,
                data=list(csv.reader(io.StringIO(files[f"{table}.csv"].decode("utf-8-sig")))),
                schema=Schema.from_descriptor(table_schema(table)),
            )
        )
    if len(resources) == len(TABLES):
        report = Package(resources=resources).validate()
        for task in report.tasks:
            for error in task.errors:
                problems.append(f"{task.name}: {error.message}")
    return problems


GEOJSON_SCHEMA_URL = "http://json.schemastore.org/geojson.json"


def _offline_registry() -> referencing.Registry[Any]:
    """The profile's one other online reference, GeoJSON, answered by the copy frictionless ships; any
    other reference fails rather than reach the network."""
    import frictionless

    geojson = Path(frictionless.__file__).with_name("assets") / "profiles" / "geojson.json"
    contents = json.loads(geojson.read_text())
    contents.pop("id", None)  # a draft-04 id would re-key the resource under another address
    resource = referencing.Resource.from_contents(contents, default_specification=DRAFT4)

    def refuse(uri: str) -> referencing.Resource[Any]:
        raise referencing.exceptions.NoSuchResource(uri)

    return referencing.Registry(retrieve=refuse).with_resource(GEOJSON_SCHEMA_URL, resource)  # type: ignore[call-arg]


def to_csv(files: dict[str, bytes]) -> str:
    """A Camtrap DP package (as {name: content}, photos included) as the wildlife-datasets CSV: one row per
    media-level animal observation. Boxes are turned back into pixels of the upright photo."""
    deployments = {r["deploymentID"]: r for r in _rows(files, "deployments")}
    media = {r["mediaID"]: r for r in _rows(files, "media")}
    records = []
    for obs in _rows(files, "observations"):
        if obs.get("observationType") != "animal" or not obs.get("mediaID"):
            continue
        photo = media[obs["mediaID"]]
        deployment = deployments[obs["deploymentID"]]
        tags = dict(
            tag.split(":", 1) for tag in (obs.get("observationTags") or "").split(" | ") if ":" in tag
        )
        zone = dict(
            t.split(":", 1) for t in (deployment.get("deploymentTags") or "").split(" | ") if ":" in t
        ).get("time_zone", "UTC")
        records.append(
            {
                "image_id": obs["observationID"],
                "identity": obs.get("individualID") or wildlife_datasets.UNKNOWN_IDENTITY,
                "path": photo["filePath"],
                "bbox": json.dumps(box) if (box := _pixels(obs, files.get(photo["filePath"]))) else "",
                "date": photo["timestamp"],
                "species": obs.get("scientificName", ""),
                "orientation": tags.get("viewpoint", ""),
                "body_part": tags.get("body_part", ""),
                "sighting": obs.get("eventID") or obs["deploymentID"],
                "time_zone": zone,
                "latitude": deployment["latitude"],
                "longitude": deployment["longitude"],
                "location_name": deployment.get("locationName", ""),
            }
        )
    return wildlife_datasets.to_csv(records)


def _rows(files: dict[str, bytes], table: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files[f"{table}.csv"].decode("utf-8-sig"))))


def _pixels(obs: dict[str, str], photo: bytes | None) -> list[int] | None:
    if photo is None or not obs.get("bboxX"):
        return None
    with Image.open(io.BytesIO(photo)) as image:
        width, height = ImageOps.exif_transpose(image).size
    x, y, w, h = (float(obs[k]) for k in ("bboxX", "bboxY", "bboxWidth", "bboxHeight"))
    return [round(x * width), round(y * height), round(w * width), round(h * height)]
