"""`manage.py backup ARCHIVE`: the database and its media files as of one moment (resight.backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resight import backup


class Command(BaseCommand):
    help = "Back up the database and the media files it refers to into one tar archive (while running)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path, help="the archive to write, e.g. resight-2026-11-29.tar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = backup.backup(options["archive"])
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up the database ({summary.database_bytes:,} bytes) and {summary.files} files "
                f"to {options['archive']}"
            )
        )
        if summary.missing:
            self.stderr.write(
                f"{len(summary.missing)} files were deleted during the backup: {summary.missing}"
            )
