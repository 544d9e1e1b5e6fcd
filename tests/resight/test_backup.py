"""manage.py backup and restore: a round trip into a fresh install (its own database and media folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from catalog.models import Annotation, MediaAsset, Sighting
from resight import backup
from resight.models import AuditEvent, Organization
from tests.conftest import World
from tests.worker import REPO

FRESH = "resight_restore_test"


def _server(dbname: str) -> psycopg.Connection:
    connection.ensure_connection()
    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=dbname, autocommit=True)


@pytest.fixture
def fresh_install(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A second install beside the tests': its own database (migrated, empty) and media folder."""
    with _server("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{FRESH}" WITH (FORCE)')
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "resight.conf.settings",
        "RESIGHT_DB_NAME": FRESH,
        "RESIGHT_MEDIA_ROOT": str(tmp_path / "fresh-media"),
    }
    if "DATABASE_URL" in os.environ:  # make cluster-test: the same server, another database
        env["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{FRESH}"
        with _server("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{FRESH}"')
    manage(env, "migrate", "--no-input", "-v", "0")
    yield env
    with _server("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{FRESH}" WITH (FORCE)')


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.usefixtures("transactional_db")
def test_a_backup_restores_into_a_fresh_install_with_every_row_and_file(
    world: World, fresh_install: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "resight.tar"
    call_command("backup", str(archive))

    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        names = set(tar.getnames())
    assert manifest["missing_files"] == []
    photos = list(MediaAsset.objects.all())
    stored = {f.name for a in photos for f in (a.file, a.preview, a.thumbnail)}
    assert {f"media/{n}" for n in stored} <= names
    assert manifest["files"] == len(stored)

    restored = manage(fresh_install, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    with _server(FRESH) as conn:

        def count(table: str) -> int:
            (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
            return int(rows)

        assert count("resight_organization") == Organization.objects.count()
        assert count("catalog_sighting") == Sighting.objects.count()
        assert count("catalog_mediaasset") == len(photos)
        assert count("resight_auditevent") == AuditEvent.objects.count()
        ((identified,),) = conn.execute(
            "SELECT individual_id FROM catalog_annotation WHERE id = %s", [world.annotation.pk]
        ).fetchall()
        assert identified == Annotation.objects.get(pk=world.annotation.pk).individual_id
        # The append-only logs are append-only in the restored database too.
        with pytest.raises(psycopg.errors.RaiseException):
            conn.execute("TRUNCATE resight_auditevent")
    fresh_media = Path(fresh_install["RESIGHT_MEDIA_ROOT"])
    for photo in photos:
        assert (fresh_media / str(photo.file.name)).read_bytes() == Path(photo.file.path).read_bytes()

    # A second restore would mix or overwrite two instances' data: refused with a clear message.
    again = manage(fresh_install, "restore", str(archive))
    assert again.returncode != 0
    assert "already holds data" in again.stderr


@pytest.mark.usefixtures("transactional_db")
def test_a_file_deleted_during_the_backup_is_reported_not_fatal(world: World, tmp_path: Path) -> None:
    Path(world.asset.thumbnail.path).unlink()  # as if removed between the snapshot and the copy
    summary = backup.backup(tmp_path / "resight.tar")
    assert summary.missing == [world.asset.thumbnail.name]
    assert not (tmp_path / "resight.tar.partial").exists()


def test_an_archive_that_is_not_a_backup_is_refused(db, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.add(__file__, arcname="notes.txt")
    with pytest.raises(KeyError):
        backup.restore(bogus, force=True)
