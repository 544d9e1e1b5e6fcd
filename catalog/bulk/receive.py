"""Staging the files of a bulk upload as they arrive (browser, zip, folder), and removing the staging of
uploads nobody finished."""

from __future__ import annotations

import datetime as dt
import posixpath
import zipfile
import zlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db.models import F
from django.utils import timezone

from catalog import images
from catalog.exports import camtrap_dp, coco
from catalog.models import BatchState, ItemState, UploadBatch, UploadItem

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
OPEN_STATES = (BatchState.RECEIVING, BatchState.INVALID, BatchState.VALID, BatchState.FAILED)
# What reading one damaged zip entry raises: a bad CRC or header, a broken deflate stream, a truncated
# member, a compression method or encryption zipfile cannot read.
ZIP_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError)


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
    try:
        if len(data) > settings.RESIGHT_MAX_UPLOAD_BYTES:
            raise images.ImageRejected(images.too_large(settings.RESIGHT_MAX_UPLOAD_BYTES))
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


def stage(batch: UploadBatch, name: str, data: bytes) -> None:
    """Stage one photo of a zip or folder; one that cannot be staged is listed with why, for the dry run
    to report with the others (a browser upload is refused at once instead: receive_file)."""
    try:
        receive_file(batch, name, data)
    except ValidationError as exc:
        _reject(batch, name, len(data), " ".join(exc.messages).removeprefix(f"{name}: "))


def _reject(batch: UploadBatch, name: str, size: int, reason: str) -> None:
    UploadItem.objects.create(batch=batch, name=name, size_bytes=size, rejected=reason)
    UploadBatch.objects.filter(pk=batch.pk).update(total=F("total") + 1)


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
                _reject(batch, name, entry.file_size, images.too_large(settings.RESIGHT_MAX_UPLOAD_BYTES))
                continue
            try:
                data = archive.read(entry)
            except ZIP_ENTRY_ERRORS as exc:
                _reject(batch, name, entry.file_size, f"The zip entry cannot be read ({exc}).")
                continue
            stage(batch, name, data)
        if not batch.csv:
            metadata = _metadata(archive, csv_entry)
            if metadata is not None:
                batch.csv.save("metadata.csv", ContentFile(metadata), save=True)


def _metadata(archive: zipfile.ZipFile, csv_entry: zipfile.ZipInfo | None) -> bytes | None:
    """The zip's own metadata as the bulk CSV: a Camtrap DP package (datapackage.json and its tables), a
    COCO annotations.json, or else its first CSV (a wildlife-datasets metadata.csv, or the bulk layout)."""
    names = set(archive.namelist())
    if "datapackage.json" in names:
        files = {n: archive.read(n) for n in names if not n.endswith("/")}
        problems = camtrap_dp.validate(files)
        if problems:
            raise ValidationError(["The Camtrap DP package is not valid: " + "; ".join(problems[:10])])
        return camtrap_dp.to_csv(files).encode()
    if "annotations.json" in names:
        return coco.to_csv(archive.read("annotations.json")).encode()
    return archive.read(csv_entry) if csv_entry is not None else None


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
