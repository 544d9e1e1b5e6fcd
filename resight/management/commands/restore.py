"""`manage.py restore ARCHIVE`: a backup into a new, empty install (resight.backup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resight import backup


class Command(BaseCommand):
    help = "Restore a backup (manage.py backup) into this install: its database and media files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--force", action="store_true", help="replace the data of an install that is not empty"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = backup.restore(options["archive"], force=options["force"])
        except (backup.BackupError, FileNotFoundError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Restored the backup of {manifest['created_at']}: {manifest['files']} files.")
        )
