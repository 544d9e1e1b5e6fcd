"""Reading the metadata CSV of a bulk upload into what each photo will become (its plan).

One row per photo, a header row, comma, semicolon or tab separated, UTF-8. Columns (case and spaces ignored;
aliases in CSV_COLUMNS): file (required), time, time_zone, latitude, longitude, location_name, species,
individual, viewpoint, body_part, sighting (rows with the same value share one sighting), x, y, width,
height (the animal's box; the whole photo if empty), observer, notes. The layout of the `wildlife-datasets`
package reads as well: `path`, `identity` ("unknown": none), `orientation`, `date` and `bbox` as
[x, y, width, height] (catalog.exports.wildlife_datasets writes it).

Here only the text is read: what a value must be (a plausible time, a position on the globe, a box inside
the photo) is checked by the dry run with the very validators single uploads use (bulk.check).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog import services, validators
from catalog.models import Individual, Species, UploadBatch, Viewpoint
from resight.permissions import Action, granted

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "file": ("file", "path", "filename", "file_name", "photo", "image"),
    "time": ("time", "observed_at", "datetime", "date_time", "timestamp", "date"),
    "time_zone": ("time_zone", "timezone", "tz"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
    "location_name": ("location_name", "location", "site", "place"),
    "species": ("species", "scientific_name", "common_name"),
    "individual": ("individual", "individual_id", "individual_code", "animal", "id_code", "identity"),
    "viewpoint": ("viewpoint", "view", "side", "orientation"),
    "body_part": ("body_part", "bodypart", "part"),
    "sighting": ("sighting", "encounter", "event", "sighting_key"),
    "x": ("x", "box_x"),
    "y": ("y", "box_y"),
    "width": ("width", "w", "box_width"),
    "height": ("height", "h", "box_height"),
    "bbox": ("bbox", "box"),
    "observer": ("observer", "photographer"),
    "notes": ("notes", "comment", "comments"),
}
_ALIASES = {alias: column for column, aliases in CSV_COLUMNS.items() for alias in aliases}
BOX_COLUMNS = ("x", "y", "width", "height")
MAX_FIELD_CHARS = 128 * 1024  # csv's own default
BBOX_COLUMN = "bbox"  # the four in one JSON list, as wildlife-datasets writes them
UNKNOWN_IDENTITIES = {"unknown"}  # wildlife-datasets' identity of an unidentified animal


@dataclass(frozen=True)
class Problem:
    row: int | None  # CSV line number (the header is line 1); None for a photo without a row
    file: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "file": self.file, "message": self.message}


def read_csv(data: bytes) -> tuple[list[dict[str, str]], list[Problem]]:
    """Rows as {column: value} with their line number in "_row"; unknown columns are ignored."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [Problem(None, "CSV", "The CSV is not UTF-8 text (save it as CSV UTF-8).")]
    if "\x00" in text:  # no database text field can hold it; usually a spreadsheet's binary format
        line = text.count("\n", 0, text.index("\x00")) + 1
        return [], [Problem(line, "CSV", "The CSV holds a NUL character: save it as CSV UTF-8 text.")]
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        return [], [Problem(None, "CSV", "The CSV is empty.")]
    columns = [_ALIASES.get(h.strip().lower().replace(" ", "_")) for h in header]
    if "file" not in columns:
        return [], [Problem(1, "CSV", "No `file` column naming each photo.")]
    rows = []
    # csv's field limit is process-wide and libraries raise it (frictionless, for Camtrap DP, sets it to the
    # largest integer): this reader holds fields to 128 KiB whatever else the worker has loaded.
    previous = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            row = {c: v.strip() for c, v in zip(columns, values, strict=False) if c is not None}
            row["_row"] = str(reader.line_num)
            rows.append(row)
    except csv.Error as exc:  # a field over the limit, an unclosed quote at the end...
        return [], [Problem(reader.line_num, "CSV", f"The CSV cannot be read from this line on ({exc}).")]
    finally:
        csv.field_size_limit(previous)
    return rows, []


def species_by_name() -> dict[str, Species]:
    """Species by lower-cased scientific and common name: one query per dry run, not one per row."""
    index: dict[str, Species] = {}
    for species in Species.objects.all():
        index.setdefault(species.common_name.lower(), species)
        index[species.scientific_name.lower()] = species  # unique; wins over a common name
    return index


def plan_row(
    batch: UploadBatch, row: dict[str, str], name: str, known: dict[str, Species]
) -> tuple[dict[str, Any], list[str]]:
    """Read one CSV row (or a photo's defaults) into what the import will create, with what cannot be read.

    The plan: `sighting` (services.SightingData as JSON), `group` (rows with the same value share a
    sighting), `species`, `individual`, `viewpoint`, `body_part`, `box`."""
    problems: list[str] = []
    species = _species(row.get("species", ""), batch.species, known, problems)
    viewpoint = (row.get("viewpoint") or batch.viewpoint or Viewpoint.UNKNOWN).lower()
    if viewpoint not in Viewpoint.values:
        problems.append(f"Unknown viewpoint {viewpoint!r} (one of {', '.join(Viewpoint.values)}).")
    body_part = row.get("body_part") or batch.body_part
    if species is not None and not problems:
        try:
            services.check_annotation_vocabulary(species, viewpoint, body_part)
        except ValidationError as exc:
            problems.extend(exc.messages)
    individual = row.get("individual", "")
    if individual.lower() in UNKNOWN_IDENTITIES:
        individual = ""
    if not individual and batch.folders_name_individuals and "/" in name:
        individual = name.rsplit("/", 2)[-2]
    if individual:
        problems.extend(_individual_problems(batch, species, individual))
    zone_name = _time_zone(row, batch, problems)
    sighting = services.SightingData(
        observed_at=_time(row, zone_name, problems),
        time_zone=zone_name,
        latitude=_number(row, "latitude", problems),
        longitude=_number(row, "longitude", problems),
        location_name=row.get("location_name", ""),
        observer=row.get("observer", ""),
        notes=row.get("notes", ""),
    )
    return {
        "sighting": sighting.as_json(),
        "group": row.get("sighting", ""),
        "species": species.pk if species else None,
        "individual": individual,
        "viewpoint": viewpoint,
        "body_part": body_part,
        "box": _box(row, problems),
    }, problems


def _number(row: dict[str, str], column: str, problems: list[str]) -> float | None:
    value = row.get(column, "")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        problems.append(f"{column} is not a number: {value!r}.")
        return None


def _box(row: dict[str, str], problems: list[str]) -> list[int] | None:
    if row.get(BBOX_COLUMN):
        return _bbox(row[BBOX_COLUMN], problems)
    values = [_number(row, c, problems) for c in BOX_COLUMNS]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        problems.append("A box needs all of x, y, width and height.")
        return None
    return [round(v) for v in values if v is not None]


def _bbox(text: str, problems: list[str]) -> list[int] | None:
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not (
        isinstance(values, list)
        and len(values) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    ):
        problems.append(f"bbox is not [x, y, width, height]: {text[:60]!r}.")
        return None
    return [round(v) for v in values]


def _species(
    value: str, default: Species | None, known: dict[str, Species], problems: list[str]
) -> Species | None:
    if not value:
        if default is None:
            problems.append("No species: add a species column or choose a default species.")
        return default
    found = known.get(value.lower())
    if found is None:
        problems.append(f"Unknown species {value!r}.")
    return found


def _time_zone(row: dict[str, str], batch: UploadBatch, problems: list[str]) -> str:
    name = row.get("time_zone") or batch.time_zone
    try:
        validators.validate_time_zone(name)
    except ValidationError as exc:
        problems.extend(exc.messages)
        return "UTC"
    return name


def _time(row: dict[str, str], zone_name: str, problems: list[str]) -> dt.datetime | None:
    value = row.get("time", "")
    if not value:
        return None
    try:
        # parse_datetime: None when the text is not shaped like a date, ValueError when it is but is no
        # real date (month 13). A date alone means noon.
        parsed = parse_datetime(value.replace("/", "-")) or dt.datetime.combine(
            dt.date.fromisoformat(value), dt.time(12)
        )
    except ValueError:
        problems.append(f"time is not a date and time (YYYY-MM-DD HH:MM[:SS]): {value!r}.")
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(zone_name))
    try:
        # The sighting's own rule, here already: a time of year 1 or 9999 may not survive being stored.
        validators.validate_observation_time(parsed)
    except ValidationError as exc:
        problems.extend(f"time: {m}" for m in exc.messages)
        return None
    return parsed


def _individual_problems(batch: UploadBatch, species: Species | None, code: str) -> list[str]:
    if not granted(batch.actor, batch.project_id, Action.CURATE, [species.pk] if species else []):
        return [f"Naming the individual ({code}) is a curator's decision: leave the column empty."]
    existing = Individual.objects.filter(project=batch.project, code=code).first()
    if existing is not None and species is not None and existing.species_id != species.pk:
        return [f"{code} is a {existing.species.common_name} in this project."]
    if existing is None:
        try:
            Individual(project=batch.project, species=species, code=code).clean_fields(
                exclude=["project", "species"]
            )
        except ValidationError as exc:  # the individual's own rules: the code's length, no NUL
            return [f"individual: {m}" for m in exc.messages]
    return []
