"""Import an existing catalogue laid out as folders: `images/<individual>/<photo>.jpg` (the layout of
../shared/datasets and of many published re-identification sets), through the same checked, resumable
batch pipeline as the browser's bulk upload. Runs in this process (no worker needed) with a progress bar.

    python manage.py import_folder PATH --project big-cats --user curator --species "Felis catus"
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from catalog.bulk import receive
from catalog.bulk import services as bulk
from catalog.models import BatchState, Species, UploadBatch
from resight.models import Project


class Command(BaseCommand):
    help = "Import photos laid out as images/<individual>/*.jpg into a project (checked first)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", type=Path, help="The folder holding images/ (or the images folder itself)"
        )
        parser.add_argument("--project", required=True, help="Project id or slug")
        parser.add_argument("--user", required=True, help="Username of the curator the import acts as")
        parser.add_argument("--species", required=True, help="Scientific or common name")
        parser.add_argument("--viewpoint", default="unknown")
        parser.add_argument("--body-part", default="")
        parser.add_argument("--csv", type=Path, help="A metadata CSV (columns as for bulk upload)")
        parser.add_argument(
            "--time",
            default="",
            help="ISO time for photos without EXIF time (default: each file's modification time)",
        )
        parser.add_argument("--check-only", action="store_true", help="The dry run alone")

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["path"]
        images = root / "images" if (root / "images").is_dir() else root
        files = sorted(p for p in images.rglob("*") if p.is_file() and receive.is_photo_name(p.name))
        if not files:
            raise CommandError(f"No photos under {images}.")
        project = Project.objects.filter(slug=options["project"]).first() or (
            Project.objects.filter(pk=int(options["project"])).first()
            if options["project"].isdigit()
            else None
        )
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        user = get_user_model().objects.filter(username=options["user"]).first()
        species = Species.objects.filter(scientific_name__iexact=options["species"]).first() or (
            Species.objects.filter(common_name__iexact=options["species"]).first()
        )
        if user is None or species is None:
            raise CommandError("Unknown user or species.")
        default_time = dt.datetime.fromisoformat(options["time"]) if options["time"] else None
        try:
            batch = bulk.batch_create(
                actor=user,
                project=project,
                species=species,
                viewpoint=options["viewpoint"],
                body_part=options["body_part"],
                default_time=default_time,
                folders_name_individuals=True,
                csv_file=io.BytesIO(options["csv"].read_bytes()) if options["csv"] else None,
            )
            for path in tqdm(files, desc="staging", unit="photo"):
                name = f"images/{path.relative_to(images).as_posix()}"
                receive.stage(batch, name, path.read_bytes())
                if default_time is None:
                    self._mtime_default(batch, path)
            bulk.batch_check(actor=user, batch=batch, inline=True)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"Upload {batch.pk}: {batch.total} photos checked, {len(batch.problems)} problems.")
        for problem in batch.problems:
            self.stdout.write(f"  row {problem['row'] or '-'} {problem['file']}: {problem['message']}")
        if batch.state != BatchState.VALID or options["check_only"]:
            return
        batch = bulk.batch_import(
            actor=user,
            batch=batch,
            inline=True,
            progress=lambda ids: tqdm(ids, desc="importing", unit="photo"),
        )
        self.stdout.write(
            self.style.SUCCESS(f"Imported {batch.imported} photos ({batch.get_state_display()}).")
        )

    @staticmethod
    def _mtime_default(batch: UploadBatch, path: Path) -> None:
        # Catalogue folders rarely carry EXIF: the oldest file time stands in for the unknown time.
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
        if batch.default_time is None or mtime < batch.default_time:
            batch.default_time = mtime
            UploadBatch.objects.filter(pk=batch.pk).update(default_time=mtime)
