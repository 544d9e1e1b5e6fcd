"""The dry run of a bulk upload: every photo still to import is planned and checked, every problem listed
with its row and file; nothing enters the catalogue."""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import zipfile
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog import images, services, validators
from catalog.bulk.plan import Problem, plan_row, read_csv, species_by_name
from catalog.bulk.receive import expand_zip, safe_name
from catalog.models import BatchState, ItemState, Sighting, UploadBatch, UploadItem

logger = logging.getLogger(__name__)
PROGRESS_EVERY = 10
# How the sighting's fields are called in the CSV, for messages about them.
CSV_NAMES = {"observed_at": "time", "location_uncertainty_m": "location uncertainty"}


def run(batch_id: int) -> None:
    """Worker side of the dry run (expanding the zip first). Safe to run twice; never leaves the batch
    checking for good: whatever goes wrong, it ends invalid, valid or failed, and may be checked again."""
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
        _failed(batch, f"The zip could not be read: {exc}")
        return
    except ValidationError as exc:  # the zip's metadata (a Camtrap DP package, a COCO file) is not valid
        _failed(batch, " ".join(exc.messages)[:1000])
        return
    except Exception as exc:
        logger.exception("dry run of upload %s failed", batch.pk)
        _failed(batch, f"The check stopped on an unexpected error ({type(exc).__name__}); try again.")
        return
    UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALIDATING).update(
        state=BatchState.INVALID if problems else BatchState.VALID,
        problems=[p.as_json() for p in problems],
        total=batch.items.count(),
        checked=batch.items.count(),
        updated_at=timezone.now(),
    )


def _failed(batch: UploadBatch, error: str) -> None:
    UploadBatch.objects.filter(pk=batch.pk, state=BatchState.VALIDATING).update(
        state=BatchState.FAILED, error=error[:2000], updated_at=timezone.now()
    )


def check(batch: UploadBatch) -> list[Problem]:
    """Plan every photo still to import and list every problem (after an import stopped half-way, the
    photos already imported are no longer checked)."""
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
        if batch.csv and row is None:
            problems.append(Problem(None, item.name, "No row in the CSV for this photo."))
        plan, messages = plan_row(batch, row or {}, item.name, known)
        messages += _check_photo(batch, item, plan, seen, time_given=bool((row or {}).get("time")))
        line = int(row["_row"]) if row else None
        problems += [Problem(line, item.name, m) for m in messages]
        UploadItem.objects.filter(pk=item.pk).update(plan=plan, error="; ".join(messages))
        if n % PROGRESS_EVERY == 0:
            UploadBatch.objects.filter(pk=batch.pk).update(checked=n, updated_at=timezone.now())
    return problems


def _check_photo(
    batch: UploadBatch, item: UploadItem, plan: dict[str, Any], seen: dict[str, str], *, time_given: bool
) -> list[str]:
    """The photo as a single upload checks it, then the sighting and box it will get (taking the photo's
    EXIF time and place where the row gives none) with the validators single uploads use."""
    if item.rejected:
        return [item.rejected]
    try:
        with item.file.open("rb") as f:
            image = services.check_photo(project=batch.project, name=item.name, stream=f, seen=seen)
    except images.ImageRejected as exc:
        return [str(exc)]
    except OSError:
        return ["The staged file is missing: send it again."]
    sighting = services.SightingData.from_json(plan["sighting"])
    if sighting.observed_at is None:
        fallback = services.exif_time(image) or batch.default_time
        if fallback is None:
            # A time that could not be read was reported already.
            return (
                []
                if time_given
                else ["No time: the photo has no EXIF time; add a time column or a default time."]
            )
        sighting = dataclasses.replace(sighting, observed_at=fallback)
    if sighting.latitude is None and sighting.longitude is None and image.latitude is not None:
        sighting = dataclasses.replace(sighting, latitude=image.latitude, longitude=image.longitude)
    plan["sighting"] = sighting.as_json()
    messages = _invalid(
        lambda: services.validated_sighting(Sighting(project=batch.project, **vars(sighting)))
    )
    if plan["box"]:
        x, y, w, h = plan["box"]
        messages += _invalid(lambda: validators.validate_box((x, y, w, h), image.width, image.height))
    return messages


def _invalid(validate: Callable[[], object]) -> list[str]:
    """The messages of a validator's ValidationError, each with the field it is about (in the CSV's words)."""
    try:
        validate()
    except ValidationError as exc:
        return [
            message if field in ("box", "__all__") else f"{CSV_NAMES.get(field, field)}: {message}"
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return []


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
