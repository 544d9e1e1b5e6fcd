"""Bulk upload: many photos (one request each, or a zip) with an optional CSV of metadata.

1. Receive: every file is stored in the batch's staging folder as it arrives, before anything else.
2. Check (dry run, on a worker): the CSV is parsed, each row matched to a photo, every photo fully decoded;
   each bad row or photo is listed with its reason. Nothing enters the catalogue. A corrected CSV can be
   sent and checked again.
3. Import (on a worker, only once the check found nothing wrong): one transaction per photo (sighting,
   photo, annotation, individual), so a killed worker resumes where it stopped and nothing is imported
   twice.
4. Once every photo has its annotation, `batch_imported` is sent and identification matches the batch's
   unidentified animals, so siblings identified in the same batch are already in the catalogue.

The CSV: one row per photo, a header row, comma, semicolon or tab separated, UTF-8. Columns (case and
spaces ignored; aliases in CSV_COLUMNS): file (required), time, time_zone, latitude, longitude,
location_name, species, individual, viewpoint, body_part, sighting (rows with the same value share one
sighting), x, y, width, height (the animal's box; the whole photo if empty), observer, notes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import posixpath
import zipfile
import zlib
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog import images, services, signals, validators
from catalog.models import (
    Annotation,
    BatchState,
    Individual,
    ItemState,
    MediaAsset,
    Sighting,
    Species,
    UploadBatch,
    UploadItem,
    Viewpoint,
)
from resight import audit, notifications
from resight.models import Project
from resight.permissions import Action, AnyUser, granted, require, require_project

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "file": ("file", "path", "filename", "file_name", "photo", "image"),
    "time": ("time", "observed_at", "datetime", "date_time", "timestamp", "date"),
    "time_zone": ("time_zone", "timezone", "tz"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng", "long"),
    "location_name": ("location_name", "location", "site", "place"),
    "species": ("species", "scientific_name", "common_name"),
    "individual": ("individual", "individual_id", "individual_code", "animal", "id_code"),
    "viewpoint": ("viewpoint", "view", "side"),
    "body_part": ("body_part", "bodypart", "part"),
    "sighting": ("sighting", "encounter", "event", "sighting_key"),
    "x": ("x", "box_x"),
    "y": ("y", "box_y"),
    "width": ("width", "w", "box_width"),
    "height": ("height", "h", "box_height"),
    "observer": ("observer", "photographer"),
    "notes": ("notes", "comment", "comments"),
}
logger = logging.getLogger(__name__)
_ALIASES = {alias: column for column, aliases in CSV_COLUMNS.items() for alias in aliases}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
PROGRESS_EVERY = 10
MAX_CSV_BYTES = 50_000_000


@dataclass(frozen=True)
class Problem:
    row: int | None  # CSV line number (the header is line 1); None for a photo without a row
    file: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "file": self.file, "message": self.message}


# --- receiving -----------------------------------------------------------------------------------------


def safe_name(name: str) -> str | None:
    """A zip or browser path as a relative POSIX path, or None when it must not be used (absolute, `..`,
    hidden or system files such as __MACOSX/ and .DS_Store)."""
    path = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
    parts = path.split("/")
    if not path or path == "." or ".." in parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return path


def is_photo_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def receive_file(batch: UploadBatch, name: str, data: bytes) -> UploadItem:
    """Stage one photo of the batch (idempotent by name: a resent file replaces nothing). Only what looks
    like a photo is stored (its header is read, not its pixels): a zip of zero-filled ".jpg" entries
    stages nothing."""
    clean = safe_name(name)
    if clean is None or not is_photo_name(clean):
        raise ValidationError({"file": [f"{name}: not a photo name (.jpg, .png, .webp, .heic)."]})
    if len(data) > settings.RESIGHT_MAX_UPLOAD_BYTES:
        raise ValidationError({"file": [f"{name}: larger than the upload limit."]})
    try:
        images.probe(data, max_pixels=settings.RESIGHT_MAX_IMAGE_PIXELS)
    except images.ImageRejected as exc:
        raise ValidationError({"file": [f"{name}: {exc}"]}) from exc
    existing = batch.items.filter(name=clean).first()
    if existing is not None:
        return existing
    item = UploadItem(batch=batch, name=clean, size_bytes=len(data))
    item.file.save(f"{len(data)}-{posixpath.basename(clean)}", ContentFile(data), save=False)
    item.save()
    UploadBatch.objects.filter(pk=batch.pk).update(total=F("total") + 1, updated_at=timezone.now())
    return item


def expand_zip(batch: UploadBatch) -> None:
    """Stage the photos of the batch's zip (and take its CSV, when none was sent apart). Resumable: photos
    already staged are skipped."""
    assert batch.source_zip
    staged = set(batch.items.values_list("name", flat=True))
    with batch.source_zip.open("rb") as f, zipfile.ZipFile(f) as archive:
        csv_entry = None
        for entry in archive.infolist():
            name = safe_name(entry.filename)
            if entry.is_dir() or name is None:
                continue
            if name.lower().endswith(".csv"):
                csv_entry = csv_entry or entry
                continue
            if not is_photo_name(name) or name in staged:
                continue
            # The declared size is checked before reading, so a zip bomb is refused without inflating it.
            if entry.file_size > settings.RESIGHT_MAX_UPLOAD_BYTES:
                _reject(batch, name, entry.file_size, "Larger than the upload limit.")
                continue
            try:
                data = archive.read(entry)
            except ZIP_ENTRY_ERRORS as exc:
                _reject(batch, name, entry.file_size, f"The zip entry cannot be read ({exc}).")
                continue
            stage(batch, name, data)
        if csv_entry is not None and not batch.csv:
            batch.csv.save("metadata.csv", ContentFile(archive.read(csv_entry)), save=True)


def stage(batch: UploadBatch, name: str, data: bytes) -> None:
    """Stage one photo of a zip or folder; one that cannot be staged is listed with why, for the dry run
    to report with the others (a browser upload is refused at once instead: receive_file)."""
    try:
        receive_file(batch, name, data)
    except ValidationError as exc:
        _reject(batch, name, len(data), " ".join(exc.messages).removeprefix(f"{name}: "))


def _reject(batch: UploadBatch, name: str, size: int, reason: str) -> None:
    """List a photo of the zip that could not be staged, with why (the dry run reports it)."""
    UploadItem.objects.create(batch=batch, name=name, size_bytes=size, rejected=reason)
    UploadBatch.objects.filter(pk=batch.pk).update(total=F("total") + 1)


# What reading one damaged zip entry raises: a bad CRC or header, a broken deflate stream, a truncated
# member, a compression method or encryption zipfile cannot read.
ZIP_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


# --- the CSV -------------------------------------------------------------------------------------------


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
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            row = {c: v.strip() for c, v in zip(columns, values, strict=False) if c is not None}
            row["_row"] = str(reader.line_num)
            rows.append(row)
    except csv.Error as exc:  # a field over csv's limit (128 KiB), an unclosed quote at the end...
        return [], [Problem(reader.line_num, "CSV", f"The CSV cannot be read from this line on ({exc}).")]
    return rows, []


def _number(row: dict[str, str], column: str, problems: list[str]) -> float | None:
    value = row.get(column, "")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        problems.append(f"{column} is not a number: {value!r}.")
        return None


def species_by_name() -> dict[str, Species]:
    """Species by lower-cased scientific and common name: one query per dry run, not one per row."""
    index: dict[str, Species] = {}
    for species in Species.objects.all():
        index.setdefault(species.common_name.lower(), species)
        index[species.scientific_name.lower()] = species  # unique; wins over a common name
    return index


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
        validators.validate_observation_time(parsed)
    except ValidationError as exc:
        problems.extend(exc.messages)
        return None
    return parsed


def plan_row(
    batch: UploadBatch, row: dict[str, str], name: str, known: dict[str, Species]
) -> tuple[dict[str, Any], list[str]]:
    """Check one CSV row (or a photo's defaults) and turn it into what the import will create."""
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
    latitude, longitude = _number(row, "latitude", problems), _number(row, "longitude", problems)
    if (latitude is None) != (longitude is None):
        problems.append("Give both latitude and longitude, or neither.")
    elif (
        latitude is not None
        and longitude is not None
        and not (-90 <= latitude <= 90 and -180 <= longitude <= 180)
    ):
        problems.append(f"The position {latitude}, {longitude} is outside the globe.")
    box_values = [_number(row, c, problems) for c in ("x", "y", "width", "height")]
    box = None
    if any(v is not None for v in box_values):
        if any(v is None or v < 0 for v in box_values) or box_values[2] == 0 or box_values[3] == 0:
            problems.append("A box needs x, y, width and height, all positive.")
        else:
            box = [round(v) for v in box_values if v is not None]
    individual = row.get("individual", "")
    if not individual and batch.folders_name_individuals and "/" in name:
        individual = name.rsplit("/", 2)[-2]
    if individual:
        problems.extend(_individual_problems(batch, species, individual))
    zone_name = _time_zone(row, batch, problems)
    when = _time(row, zone_name, problems)
    return {
        "time": when.isoformat() if when else None,
        "time_zone": zone_name,
        "latitude": latitude,
        "longitude": longitude,
        "location_name": row.get("location_name", "")[:200],
        "species": species.pk if species else None,
        "individual": individual[:60],
        "viewpoint": viewpoint,
        "body_part": body_part,
        "sighting": row.get("sighting", ""),
        "box": box,
        "observer": row.get("observer", "")[:200],
        "notes": row.get("notes", ""),
    }, problems


def _individual_problems(batch: UploadBatch, species: Species | None, code: str) -> list[str]:
    if not granted(batch.actor, batch.project_id, Action.CURATE, [species.pk] if species else []):
        return [f"Naming the individual ({code}) is a curator's decision: leave the column empty."]
    existing = Individual.objects.filter(project=batch.project, code=code).first()
    if existing is not None and species is not None and existing.species_id != species.pk:
        return [f"{code} is a {existing.species.common_name} in this project."]
    return []


# --- the dry run ---------------------------------------------------------------------------------------


def _rows_by_item(
    batch: UploadBatch, items: list[UploadItem], rows: list[dict[str, str]], problems: list[Problem]
) -> dict[int, dict[str, str]]:
    # Rows of photos imported before an import stopped half-way (matched by path or file name, as below).
    imported = {
        n
        for path in batch.items.filter(state=ItemState.IMPORTED).values_list("name", flat=True)
        for n in (path, posixpath.basename(path))
    }
    by_name = {i.name: i for i in items}
    by_base: dict[str, list[UploadItem]] = {}
    for each in items:
        by_base.setdefault(posixpath.basename(each.name), []).append(each)
    matched: dict[int, dict[str, str]] = {}
    for row in rows:
        line, name = int(row["_row"]), safe_name(row.get("file", "")) or row.get("file", "")
        item = by_name.get(name)
        if item is None and len(by_base.get(posixpath.basename(name), [])) == 1:
            item = by_base[posixpath.basename(name)][0]
        if item is None and name in imported:
            continue
        if item is None:
            problems.append(Problem(line, name or "(empty)", "No such photo in this upload."))
        elif item.pk in matched:
            problems.append(
                Problem(line, name, f"A second row for this photo (first: row {matched[item.pk]['_row']}).")
            )
        else:
            matched[item.pk] = row
    return matched


def _check_photo(
    batch: UploadBatch, item: UploadItem, seen: dict[str, str]
) -> tuple[images.InspectedImage | None, str]:
    if item.rejected:
        return None, item.rejected
    try:
        with item.file.open("rb") as f:
            data = images.read_limited(f, settings.RESIGHT_MAX_UPLOAD_BYTES)
        image = images.inspect(data, max_pixels=settings.RESIGHT_MAX_IMAGE_PIXELS)
    except images.ImageRejected as exc:
        return None, str(exc)
    except OSError:
        return None, "The staged file is missing: send it again."
    if image.sha256 in seen:
        return None, f"The same photo as {seen[image.sha256]}."
    seen[image.sha256] = item.name
    existing = MediaAsset.objects.filter(project=batch.project, sha256=image.sha256).first()
    if existing is not None:
        return None, f"Already in the project (photo {existing.pk}, {existing.original_filename})."
    return image, ""


def check(batch: UploadBatch) -> list[Problem]:
    """The dry run: plan every photo still to import, list every problem, write nothing to the catalogue.
    (After an import stopped half-way, the photos already imported are no longer checked.)"""
    items = list(batch.items.filter(state=ItemState.RECEIVED).order_by("name"))
    known = species_by_name()
    problems: list[Problem] = []
    rows: list[dict[str, str]] = []
    if batch.csv:
        with batch.csv.open("rb") as f:
            rows, csv_problems = read_csv(f.read())
        problems += csv_problems
    if not items:
        problems.append(Problem(None, "(batch)", "No photos in this upload yet."))
    matched = _rows_by_item(batch, items, rows, problems)
    seen: dict[str, str] = {}
    for n, item in enumerate(items, start=1):
        row = matched.get(item.pk)
        line = int(row["_row"]) if row else None
        if batch.csv and row is None:
            problems.append(Problem(None, item.name, "No row in the CSV for this photo."))
        plan, messages = plan_row(batch, row or {}, item.name, known)
        image, photo_problem = _check_photo(batch, item, seen)
        if photo_problem:
            messages.append(photo_problem)
        if image is not None and plan["time"] is None:
            fallback = services.exif_time(image) or batch.default_time
            if fallback is None and not (row or {}).get("time"):  # a bad time was reported already
                messages.append("No time: the photo has no EXIF time; add a time column or a default time.")
            plan["time"] = fallback.isoformat() if fallback else None
        if image is not None and plan["latitude"] is None and image.latitude is not None:
            plan["latitude"], plan["longitude"] = image.latitude, image.longitude
        if image is not None and plan["box"]:
            x, y, w, h = plan["box"]
            if x + w > image.width or y + h > image.height:
                messages.append(f"The box lies outside the {image.width}x{image.height} photo.")
        problems += [Problem(line, item.name, m) for m in messages]
        UploadItem.objects.filter(pk=item.pk).update(plan=plan, error="; ".join(messages))
        if n % PROGRESS_EVERY == 0:
            UploadBatch.objects.filter(pk=batch.pk).update(checked=n, updated_at=timezone.now())
    return problems


def run_check(batch_id: int) -> None:
    """Worker side of the dry run (expanding the zip first). Safe to run twice."""
    batch = UploadBatch.objects.select_related("project", "created_by", "acting_user", "species").get(
        pk=batch_id
    )
    if batch.state != BatchState.VALIDATING:
        return
    try:
        if batch.source_zip:
            expand_zip(batch)
        problems = check(batch)
    except (zipfile.BadZipFile, OSError) as exc:
        _check_failed(batch, f"The zip could not be read: {exc}")
        return
    except Exception as exc:  # never leave the batch "checking" for good: it can be checked again
        logger.exception("dry run of upload %s failed", batch.pk)
        _check_failed(batch, f"The check stopped on an unexpected error ({type(exc).__name__}); try again.")
        return
    UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALIDATING).update(
        state=BatchState.INVALID if problems else BatchState.VALID,
        problems=[p.as_json() for p in problems],
        total=batch.items.count(),
        checked=batch.items.count(),
        updated_at=timezone.now(),
    )


def _check_failed(batch: UploadBatch, error: str) -> None:
    UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALIDATING).update(
        state=BatchState.FAILED, error=error[:2000], updated_at=timezone.now()
    )


# --- the import ----------------------------------------------------------------------------------------


def _individual(batch: UploadBatch, species: Species, code: str) -> Individual:
    existing = Individual.objects.filter(project=batch.project, code=code).first()
    if existing is not None:
        return existing
    return services.individual_create(actor=batch.actor, project=batch.project, species=species, code=code)


def _sighting(batch: UploadBatch, item: UploadItem, plan: dict[str, Any]) -> Sighting:
    key = plan["sighting"]
    if key:
        sibling = batch.items.filter(plan__sighting=key, sighting__isnull=False).exclude(pk=item.pk).first()
        if sibling is not None and sibling.sighting is not None:
            return sibling.sighting
    return services.sighting_create(
        actor=batch.actor,
        project=batch.project,
        data=services.SightingData(
            observed_at=dt.datetime.fromisoformat(plan["time"]),
            time_zone=plan["time_zone"],
            latitude=plan["latitude"],
            longitude=plan["longitude"],
            location_name=plan["location_name"],
            observer=plan["observer"],
            notes=plan["notes"],
        ),
    )


def _box(values: list[int]) -> tuple[int, int, int, int]:
    x, y, w, h = values
    return (x, y, w, h)


def import_item(batch: UploadBatch, item_id: int) -> Annotation | None:
    """Import one checked photo in one transaction; a photo already imported is skipped."""
    with transaction.atomic():
        item = UploadItem.objects.select_for_update().filter(pk=item_id, state=ItemState.RECEIVED).first()
        if item is None:
            return None
        plan = item.plan
        species = Species.objects.get(pk=plan["species"])
        sighting = _sighting(batch, item, plan)
        with item.file.open("rb") as f:
            asset = services.media_asset_create(
                actor=batch.actor,
                project=batch.project,
                photo=services.PhotoUpload(posixpath.basename(item.name), f),
                sighting=sighting,
            )
        annotation = services.annotation_create(
            actor=batch.actor,
            media_asset=asset,
            species=species,
            box=_box(plan["box"]) if plan["box"] else (0, 0, asset.width, asset.height),
            viewpoint=plan["viewpoint"],
            body_part=plan["body_part"],
            individual=_individual(batch, species, plan["individual"]) if plan["individual"] else None,
            match_now=False,  # the whole batch is matched once it is in (run_import)
        )
        UploadItem.objects.filter(pk=item.pk).update(
            state=ItemState.IMPORTED, sighting=sighting, annotation=annotation
        )
        UploadBatch.objects.filter(pk=batch.pk).update(imported=F("imported") + 1, updated_at=timezone.now())
        staged = str(item.file.name)
        transaction.on_commit(lambda: item.file.storage.delete(staged))
    return annotation


def pending_items(batch: UploadBatch) -> Iterator[int]:
    yield from batch.items.filter(state=ItemState.RECEIVED).order_by("name").values_list("pk", flat=True)


def run_import(batch_id: int) -> None:
    """Worker side of the import; resumes after a killed worker (imported photos are skipped)."""
    batch = UploadBatch.objects.select_related("project", "created_by", "acting_user").get(pk=batch_id)
    if batch.state == BatchState.IMPORTING:
        try:
            for item_id in list(pending_items(batch)):
                import_item(batch, item_id)
        except (ValidationError, PermissionDenied) as exc:
            # The catalogue changed since the dry run (a duplicate photo, a revoked role): stop, keep what
            # was imported, say why; checking again lists what is left.
            UploadBatch.objects.filter(pk=batch.pk).update(
                state=BatchState.FAILED,
                error=" ".join(getattr(exc, "messages", [str(exc)])),
                updated_at=timezone.now(),
            )
            return
        UploadBatch.objects.filter(pk=batch.pk, state=BatchState.IMPORTING).update(
            state=BatchState.MATCHING, updated_at=timezone.now()
        )
        batch.refresh_from_db()
    if batch.state == BatchState.MATCHING:
        annotation_ids = list(
            batch.items.filter(annotation__isnull=False).values_list("annotation_id", flat=True)
        )
        # Every photo has its annotation now: identification matches the unidentified ones.
        signals.batch_imported.send(sender=UploadBatch, batch=batch, annotation_ids=annotation_ids)
        UploadBatch.objects.filter(pk=batch.pk, state=BatchState.MATCHING).update(
            state=BatchState.DONE, finished_at=timezone.now(), updated_at=timezone.now()
        )
        notifications.notify(
            [batch.created_by],
            kind="upload_done",
            text=f"Upload {batch.pk} imported: {batch.imported} photos.",
            url=reverse("upload-detail", args=[batch.pk]),
        )
        if batch.source_zip:  # every photo in it is a media asset now; the CSV stays as provenance
            batch.source_zip.delete(save=False)
            UploadBatch.objects.filter(pk=batch.pk).update(source_zip="")


# --- abandoned batches ---------------------------------------------------------------------------------

OPEN_STATES = (BatchState.RECEIVING, BatchState.INVALID, BatchState.VALID, BatchState.FAILED)


def purge_abandoned(older_than: dt.timedelta) -> list[int]:
    """Remove the staged photos and zip of batches nobody touched for `older_than` and that are not
    imported (left invalid, never imported, or stopped half-way): staging is not storage. The batch and
    its list of photos stay, with a message; photos sent again are checked as usual. Returns the batches."""
    cutoff = timezone.now() - older_than
    purged = []
    for batch in UploadBatch.objects.filter(state__in=OPEN_STATES, updated_at__lt=cutoff):
        staged = batch.items.filter(state=ItemState.RECEIVED).exclude(file="")
        for item in staged:
            item.file.delete(save=False)
        staged.update(file="")
        if batch.source_zip:
            batch.source_zip.delete(save=False)
        UploadBatch.objects.filter(pk=batch.pk).update(
            state=BatchState.FAILED,
            source_zip="",
            error=f"Nothing happened here for {older_than.days} days, so the photos waiting to be imported "
            "were removed. Send them again to go on.",
            updated_at=timezone.now(),
        )
        purged.append(batch.pk)
    return purged


# --- the batch's services (permission-checked; the views and the API call these) ------------------------


def batch_create(
    *,
    actor: AnyUser,
    project: Project,
    species: Species | None = None,
    viewpoint: str = Viewpoint.UNKNOWN,
    body_part: str = "",
    default_time: dt.datetime | None = None,
    time_zone: str = "UTC",
    folders_name_individuals: bool = False,
    csv_file: IO[bytes] | None = None,
    zip_file: IO[bytes] | None = None,
) -> UploadBatch:
    """A new batch; its CSV and zip are stored before anything else, then (with a zip) checked at once."""
    require_project(actor, project, Action.CONTRIBUTE, species.pk if species else None)
    assert isinstance(actor, User)
    batch = UploadBatch.objects.create(
        project=project,
        created_by=actor,
        species=species,
        viewpoint=viewpoint,
        body_part=body_part,
        default_time=default_time,
        time_zone=time_zone,
        folders_name_individuals=folders_name_individuals,
    )
    if csv_file is not None:
        batch.csv.save("metadata.csv", ContentFile(_read_csv_upload(csv_file)), save=True)
    if zip_file is not None:
        batch.source_zip.save("photos.zip", File(zip_file), save=True)
        batch_check(actor=actor, batch=batch)
    audit.record(actor=actor, action="upload_batch.create", obj=batch, project_id=project.pk)
    return batch


def _read_csv_upload(stream: IO[bytes]) -> bytes:
    data = stream.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise ValidationError({"csv": [f"The CSV is larger than {MAX_CSV_BYTES // 1_000_000} MB."]})
    return data


def _require_open(actor: AnyUser, batch: UploadBatch) -> None:
    """Photos, a CSV or a new check are taken until the import is done; after an import that stopped
    half-way (FAILED) too: the check then covers the photos not imported yet."""
    require(actor, batch, Action.CONTRIBUTE)
    if batch.state not in OPEN_STATES:
        raise ValidationError({"batch": [f"The upload is {batch.get_state_display().lower()}: wait for it."]})


def batch_add_photo(*, actor: AnyUser, batch: UploadBatch, name: str, stream: IO[bytes]) -> UploadItem:
    """Stage one photo sent by the browser (resending one the batch has is a no-op)."""
    _require_open(actor, batch)
    data = stream.read(settings.RESIGHT_MAX_UPLOAD_BYTES + 1)
    item = receive_file(batch, name, data)
    _reopen(batch)
    return item


def batch_replace_csv(*, actor: AnyUser, batch: UploadBatch, csv_file: IO[bytes]) -> UploadBatch:
    """A corrected CSV replaces the old one; the batch must be checked again."""
    _require_open(actor, batch)
    data = _read_csv_upload(csv_file)
    old = batch.csv.name if batch.csv else None
    batch.csv.save("metadata.csv", ContentFile(data), save=True)
    if old and old != batch.csv.name:
        batch.csv.storage.delete(old)
    _reopen(batch)
    audit.record(actor=actor, action="upload_batch.csv", obj=batch, project_id=batch.project_id)
    return batch


def _reopen(batch: UploadBatch) -> None:
    UploadBatch.objects.filter(pk=batch.pk).update(state=BatchState.RECEIVING, problems=[], error="")
    batch.refresh_from_db()


def batch_check(*, actor: AnyUser, batch: UploadBatch) -> UploadBatch:
    """Start the dry run on a worker (it checks what `actor` may do, e.g. name individuals)."""
    _require_open(actor, batch)
    UploadBatch.objects.filter(pk=batch.pk).update(
        state=BatchState.VALIDATING,
        checked=0,
        problems=[],
        error="",
        acting_user=actor,
        updated_at=timezone.now(),
    )
    transaction.on_commit(lambda: _enqueue("check", batch.pk))
    batch.refresh_from_db()
    return batch


def batch_import(*, actor: AnyUser, batch: UploadBatch) -> UploadBatch:
    """Start the import of a batch whose dry run found nothing wrong. The import is `actor`'s: naming
    individuals needs their curate right, whoever made the batch or its CSV."""
    require(actor, batch, Action.CONTRIBUTE)
    named = (
        batch.items.filter(state=ItemState.RECEIVED, plan__individual__gt="")
        .values_list("plan__species", flat=True)
        .distinct()
    )
    if any(not granted(actor, batch.project_id, Action.CURATE, [int(s)]) for s in named if s):
        raise PermissionDenied(
            "This upload names individuals: only a curator of their species may import it."
        )
    if not UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALID).update(
        state=BatchState.IMPORTING, acting_user=actor, updated_at=timezone.now()
    ):
        raise ValidationError({"batch": ["Only a checked upload with no problems can be imported."]})
    transaction.on_commit(lambda: _enqueue("import", batch.pk))
    audit.record(actor=actor, action="upload_batch.import", obj=batch, project_id=batch.project_id)
    batch.refresh_from_db()
    return batch


def _enqueue(step: str, batch_id: int) -> None:
    from catalog import tasks  # the tasks module imports this one

    (tasks.check_batch if step == "check" else tasks.import_batch).delay(batch_id)
