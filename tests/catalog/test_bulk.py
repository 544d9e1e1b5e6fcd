"""Bulk upload: the dry run lists every bad row and photo and writes nothing; a corrected CSV passes; the
import is resumable and matches the batch only once every photo has its annotation."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from catalog import services
from catalog.bulk import check, importing, receive
from catalog.bulk import services as bulk
from catalog.models import Annotation, BatchState, Individual, ItemState, MediaAsset, Sighting, UploadBatch
from identification.models import MatchJob
from resight.models import AuditEvent
from tests.conftest import World, make_zip, photo_bytes, upload

GOOD_CSV = """file,time,latitude,longitude,location_name,species,individual,viewpoint,body_part,sighting
images/a.jpg,2026-05-01 06:10,-1.30,35.10,Rhino Ridge,Panthera pardus,L1,left,flank,s1
images/b.jpg,2026-05-01 06:12,-1.30,35.10,Rhino Ridge,Leopard,,right,flank,s1
images/c.jpg,2026-05-02T18:00:00+03:00,,,,panthera pardus,,,flank,
"""
BAD_CSV = (
    GOOD_CSV.replace("2026-05-01 06:12,-1.30", "yesterday,-1.30")
    .replace("left,flank,s1", "up,flank,s1")
    .replace("2026-05-02T18:00:00+03:00", "2026-13-45 99:00")
)


def photos() -> dict[str, bytes]:
    return {f"images/{n}.jpg": photo_bytes(seed=40 + i, pattern_seed=40 + i) for i, n in enumerate("abc")}


def catalogue_counts() -> tuple[int, int, int, int]:
    return (
        Sighting.objects.count(),
        MediaAsset.objects.count(),
        Annotation.objects.count(),
        Individual.objects.count(),
    )


def new_batch(
    world: World,
    *,
    user: str = "curator",
    csv: str | None = None,
    files: dict[str, bytes] | None = None,
    **kw,
) -> UploadBatch:
    return bulk.batch_create(
        actor=world.users[user],
        project=world.project,
        csv_file=io.BytesIO(csv.encode()) if csv is not None else None,
        zip_file=make_zip(files if files is not None else photos()),
        **kw,
    )


def test_dry_run_lists_every_bad_row_and_writes_nothing_then_the_fix_imports(
    world: World, media_root: Path, django_capture_on_commit_callbacks
) -> None:
    before = catalogue_counts()
    batch = new_batch(world, csv=BAD_CSV)
    assert batch.state == BatchState.VALIDATING
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.INVALID
    assert {(p["row"], p["file"]) for p in batch.problems} == {
        (2, "images/a.jpg"),
        (3, "images/b.jpg"),
        (4, "images/c.jpg"),
    }
    messages = " ".join(p["message"] for p in batch.problems)
    assert "time is not a date" in messages and "Unknown viewpoint 'up'" in messages
    assert catalogue_counts() == before  # nothing written
    with pytest.raises(ValidationError):
        bulk.batch_import(actor=world.users["curator"], batch=batch)

    bulk.batch_replace_csv(actor=world.users["curator"], batch=batch, csv_file=io.BytesIO(GOOD_CSV.encode()))
    bulk.batch_check(actor=world.users["curator"], batch=batch)
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.VALID, batch.problems
    bulk.batch_import(actor=world.users["curator"], batch=batch)
    with django_capture_on_commit_callbacks(execute=True):
        importing.run(batch.pk)
    batch.refresh_from_db()
    assert (batch.state, batch.imported, batch.total) == (BatchState.DONE, 3, 3)

    items = {i.name: i for i in batch.items.select_related("annotation", "sighting")}
    a, b, c = (items[f"images/{n}.jpg"] for n in "abc")
    assert a.sighting_id == b.sighting_id != c.sighting_id  # the `sighting` column groups rows
    assert a.annotation_id and b.annotation_id and a.sighting_id and c.sighting_id
    a_annotation, b_annotation = (
        Annotation.objects.get(pk=a.annotation_id),
        Annotation.objects.get(pk=b.annotation_id),
    )
    assert a_annotation.individual == world.leopard_individual
    assert (b_annotation.viewpoint, b_annotation.body_part) == ("right", "flank")
    a_sighting, c_sighting = Sighting.objects.get(pk=a.sighting_id), Sighting.objects.get(pk=c.sighting_id)
    assert a_sighting.location_name == "Rhino Ridge" and a_sighting.latitude == -1.30
    assert c_sighting.observed_at.isoformat() == "2026-05-02T15:00:00+00:00"
    # Matching started for the unidentified photos only, after all three were in.
    assert set(MatchJob.objects.values_list("annotation_id", flat=True)) == {b.annotation_id, c.annotation_id}
    # Staged copies are gone once imported; the originals live with the media assets.
    assert not list((media_root / "uploads" / str(batch.pk)).glob("*.jpg"))
    assert not batch.source_zip


def test_corrupt_duplicate_and_unlisted_photos_are_reported(world: World) -> None:
    files = photos() | {
        "images/broken.jpg": b"\xff\xd8 not really a jpeg",
        "images/copy.jpg": photos()["images/a.jpg"],
    }
    csv = GOOD_CSV + "".join(
        f"images/{name}.jpg,2026-05-03 10:00,,,,Leopard,,,,\n" for name in ("broken", "missing")
    )
    batch = new_batch(world, csv=csv, files=files)
    check.run(batch.pk)
    batch.refresh_from_db()
    problems = {(p["file"], p["message"].split(":")[0].split(" (")[0]) for p in batch.problems}
    assert batch.state == BatchState.INVALID
    assert any(f == "images/broken.jpg" for f, _ in problems)
    assert ("images/missing.jpg", "No such photo in this upload.") in problems
    assert any(f == "images/copy.jpg" and "No row in the CSV" in m for f, m in problems)
    assert any("The same photo as images/a.jpg" in p["message"] for p in batch.problems)


def test_zip_entries_outside_the_batch_and_oversized_ones_are_refused(world: World, settings) -> None:
    settings.RESIGHT_MAX_UPLOAD_BYTES = 30_000
    files = {
        "../../etc/evil.jpg": photo_bytes(seed=1),
        "__MACOSX/images/._a.jpg": b"junk",
        "images/big.jpg": b"\xff" * 40_000,
        "images/ok.jpg": photo_bytes(seed=2),
    }
    batch = new_batch(world, files=files, species=world.leopard, default_time=None)
    check.run(batch.pk)
    names = set(batch.items.values_list("name", flat=True))
    assert names == {"images/big.jpg", "images/ok.jpg"}  # no path out of the batch, no resource forks
    big = batch.items.get(name="images/big.jpg")
    assert "upload limit" in big.rejected


def test_folder_layout_names_individuals_and_needs_a_curator(world: World) -> None:
    files = {
        "images/NEW-1/1.jpg": photo_bytes(seed=61, pattern_seed=61),
        "images/NEW-1/2.jpg": photo_bytes(seed=62, pattern_seed=61),
        "images/NEW-2/1.jpg": photo_bytes(seed=63, pattern_seed=63),
    }
    import datetime as dt

    when = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    refused = new_batch(
        world,
        user="contributor",
        files=files,
        species=world.leopard,
        default_time=when,
        folders_name_individuals=True,
    )
    check.run(refused.pk)
    refused.refresh_from_db()
    assert refused.state == BatchState.INVALID
    assert all("curator's decision" in p["message"] for p in refused.problems)

    batch = new_batch(
        world, files=files, species=world.leopard, default_time=when, folders_name_individuals=True
    )
    # The contributor's batch holds the same photos, but nothing of it was imported: no duplicates yet.
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.VALID, batch.problems
    bulk.batch_import(actor=world.users["curator"], batch=batch)
    importing.run(batch.pk)
    new1 = Individual.objects.get(project=world.project, code="NEW-1")
    assert new1.annotations.count() == 2
    assert Individual.objects.get(code="NEW-2").annotations.count() == 1
    assert not MatchJob.objects.exists()  # everything was identified already


def test_import_resumes_after_a_crash_without_duplicates(world: World) -> None:
    batch = new_batch(world, csv=GOOD_CSV)
    check.run(batch.pk)
    bulk.batch_import(actor=world.users["curator"], batch=batch)
    first = batch.items.filter(state=ItemState.RECEIVED).order_by("name").values_list("pk", flat=True)[0]
    importing.import_item(batch, first)  # the worker got this far, then died
    assert MatchJob.objects.count() == 0  # no matching before the whole batch is in
    importing.run(batch.pk)  # the task again, as redelivered
    importing.run(batch.pk)  # and once more: a no-op
    batch.refresh_from_db()
    assert (batch.state, batch.imported) == (BatchState.DONE, 3)
    assert batch.items.filter(state=ItemState.IMPORTED).count() == 3
    assert MediaAsset.objects.filter(original_filename__in=["a.jpg", "b.jpg", "c.jpg"]).count() == 3
    assert MatchJob.objects.count() == 2


def test_sending_a_photo_twice_keeps_one(world: World) -> None:
    batch = bulk.batch_create(actor=world.users["contributor"], project=world.project, species=world.leopard)
    data = photo_bytes(seed=70)
    bulk.batch_add_photo(
        actor=world.users["contributor"], batch=batch, name="x/one.jpg", stream=io.BytesIO(data)
    )
    bulk.batch_add_photo(
        actor=world.users["contributor"], batch=batch, name="x/one.jpg", stream=io.BytesIO(data)
    )
    assert batch.items.count() == 1
    with pytest.raises(ValidationError, match="not a photo"):
        bulk.batch_add_photo(
            actor=world.users["contributor"], batch=batch, name="notes.txt", stream=io.BytesIO(b"hi")
        )


def test_upload_pages(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    zipped = make_zip(photos())
    zipped.name = "photos.zip"
    csv = io.BytesIO(BAD_CSV.encode())
    csv.name = "metadata.csv"
    response = client.post(
        "/uploads/",
        {
            "project": world.project.pk,
            "viewpoint": "unknown",
            "time_zone": "UTC",
            "csv_file": csv,
            "zip_file": zipped,
        },
    )
    assert response.status_code == 302
    batch = UploadBatch.objects.get()
    check.run(batch.pk)
    page = client.get(f"/uploads/{batch.pk}/").content.decode()
    assert "Nothing was written" in page and "Unknown viewpoint" in page
    fixed = io.BytesIO(GOOD_CSV.encode())
    fixed.name = "fixed.csv"
    assert client.post(f"/uploads/{batch.pk}/csv/", {"csv_file": fixed}).status_code == 302
    check.run(batch.pk)
    assert "Import 3 photos" in client.get(f"/uploads/{batch.pk}/").content.decode()
    photo = io.BytesIO(photo_bytes(seed=80))
    photo.name = "late.jpg"
    answer = client.post(
        f"/uploads/{batch.pk}/photos/",
        {"photos": photo, "path": "images/late.jpg"},
        HTTP_ACCEPT="application/json",
    )
    assert answer.json() == {"received": ["images/late.jpg"], "errors": []}
    batch.refresh_from_db()
    assert batch.state == BatchState.RECEIVING  # a new photo means checking again

    viewer = Client()
    viewer.force_login(world.users["viewer"])
    assert viewer.get(f"/uploads/{batch.pk}/").status_code == 403
    outsider = Client()
    outsider.force_login(world.users["outsider"])
    assert outsider.get(f"/uploads/{batch.pk}/").status_code == 404


def test_import_folder_command_brings_in_a_catalogue(world: World, tmp_path: Path) -> None:
    from django.core.management import call_command

    for code, seeds in (("Tom", (1, 2)), ("Kit", (3,))):
        (tmp_path / "images" / code).mkdir(parents=True)
        for seed in seeds:
            (tmp_path / "images" / code / f"{seed}.jpg").write_bytes(
                photo_bytes(seed=90 + seed, pattern_seed=seed)
            )
    out = io.StringIO()
    call_command(
        "import_folder", str(tmp_path), project="big-cats", user="curator", species="Leopard", stdout=out
    )
    assert "Imported 3 photos" in out.getvalue()
    assert Individual.objects.get(project=world.project, code="Tom").annotations.count() == 2
    assert Individual.objects.get(project=world.project, code="Kit").annotations.count() == 1


def test_bulk_upload_through_the_api(world: World, api_client_for) -> None:
    client = api_client_for(world.users["curator"])
    zipped = make_zip(photos())
    zipped.name = "photos.zip"
    created = client.post(
        "/api/upload-batches/",
        {"project": world.project.pk, "csv_file": io.BytesIO(BAD_CSV.encode()), "zip_file": zipped},
        format="multipart",
    )
    assert created.status_code == 201, created.json()
    batch_id = created.json()["id"]
    assert created.json()["state"] == "validating"
    check.run(batch_id)
    report = client.get(f"/api/upload-batches/{batch_id}/").json()
    assert report["state"] == "invalid" and {p["row"] for p in report["problems"]} == {2, 3, 4}
    assert client.post(f"/api/upload-batches/{batch_id}/import/").status_code == 400
    fixed = io.BytesIO(GOOD_CSV.encode())
    fixed.name = "fixed.csv"
    assert (
        client.post(
            f"/api/upload-batches/{batch_id}/csv/", {"csv_file": fixed}, format="multipart"
        ).status_code
        == 200
    )
    extra = io.BytesIO(photo_bytes(seed=99))
    extra.name = "late.jpg"
    added = client.post(f"/api/upload-batches/{batch_id}/photos/", {"file": extra}, format="multipart")
    assert added.status_code == 200 and added.json()["total"] == 4
    assert client.post(f"/api/upload-batches/{batch_id}/check/").json()["state"] == "validating"
    check.run(batch_id)
    report = client.get(f"/api/upload-batches/{batch_id}/").json()
    assert report["state"] == "invalid"
    assert {p["file"] for p in report["problems"]} == {"late.jpg"}  # the CSV rows are fine now
    assert "No row in the CSV for this photo." in {p["message"] for p in report["problems"]}
    outsider = api_client_for(world.users["outsider"])
    assert outsider.get(f"/api/upload-batches/{batch_id}/").status_code == 404


def test_an_import_stopped_by_a_changed_catalogue_is_checked_again_for_what_is_left(world: World) -> None:
    batch = new_batch(world, csv=GOOD_CSV)
    check.run(batch.pk)
    bulk.batch_import(actor=world.users["curator"], batch=batch)
    # Before the worker gets to it, someone uploads c.jpg to the project by hand.
    services.media_asset_create(
        actor=world.users["curator"], project=world.project, photo=upload("c.jpg", photos()["images/c.jpg"])
    )
    importing.run(batch.pk)
    batch.refresh_from_db()
    assert (batch.state, batch.imported) == (BatchState.FAILED, 2) and "Already in the project" in batch.error
    bulk.batch_check(actor=world.users["curator"], batch=batch)  # the uploader may check again
    check.run(batch.pk)
    batch.refresh_from_db()
    # Only the photo still to import is checked; the rows of the two imported ones are not "missing".
    assert batch.state == BatchState.INVALID
    assert [(p["file"], p["message"].split(" (")[0]) for p in batch.problems] == [
        ("images/c.jpg", "Already in the project")
    ]


# --- hardening: whose decision an import is, and batches that never get stuck or bloated ----------------


def test_naming_individuals_is_the_importers_decision_and_the_audit_names_them(world: World) -> None:
    """The issue's case: a contributor sends a CSV naming individuals onto a curator's batch and imports
    it. The contributor's check reports it, the contributor cannot import what a curator checked, and
    the events of an import name the user who started it."""
    curator, contributor = world.users["curator"], world.users["contributor"]
    batch = new_batch(world, user="curator", csv=GOOD_CSV.replace(",,right", ",L1,right"))
    check.run(batch.pk)
    batch.refresh_from_db()
    bulk.batch_replace_csv(actor=contributor, batch=batch, csv_file=io.BytesIO(GOOD_CSV.encode()))
    bulk.batch_check(actor=contributor, batch=batch)
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.INVALID
    assert any("curator's decision" in p["message"] for p in batch.problems)

    bulk.batch_check(actor=curator, batch=batch)  # the curator checks the same CSV: fine for a curator
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.VALID, batch.problems
    with pytest.raises(PermissionDenied, match="curator"):
        bulk.batch_import(actor=contributor, batch=batch)
    assert catalogue_counts()[1] == 2  # nothing imported (the world's two photos)

    bulk.batch_import(actor=curator, batch=batch)
    importing.run(batch.pk)
    named = Annotation.objects.get(media_asset__original_filename="a.jpg")
    assert named.individual == world.leopard_individual
    event = AuditEvent.objects.get(action="annotation.create", object_id=str(named.pk))
    assert event.actor_name == "curator"


def test_a_contributors_import_of_unnamed_photos_is_recorded_as_theirs(world: World) -> None:
    contributor = world.users["contributor"]
    batch = new_batch(
        world, user="curator", species=world.leopard, default_time=dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    )
    check.run(batch.pk)
    bulk.batch_import(actor=contributor, batch=batch)
    importing.run(batch.pk)
    actors = set(AuditEvent.objects.filter(action="media_asset.upload").values_list("actor_name", flat=True))
    assert actors == {"curator", "contributor"}  # the world's photos, and these three
    assert MediaAsset.objects.filter(uploaded_by=contributor).count() == 3


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("file,time\nimages/a.jpg,2025-01-01\x00 10:00\n", "NUL character"),
        ("file,notes\nimages/a.jpg," + "x" * 140_000 + "\n", "cannot be read from this line on"),
    ],
)
def test_a_csv_with_a_nul_or_a_huge_field_is_reported_and_can_be_fixed(
    world: World, csv: str, message: str
) -> None:
    batch = new_batch(world, csv=csv, species=world.leopard)
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.INVALID
    assert any(message in p["message"] for p in batch.problems), batch.problems
    # Not stuck: the CSV is replaced and checked again.
    bulk.batch_replace_csv(actor=world.users["curator"], batch=batch, csv_file=io.BytesIO(GOOD_CSV.encode()))
    bulk.batch_check(actor=world.users["curator"], batch=batch)
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.VALID, batch.problems


def test_a_zip_with_a_corrupt_entry_reports_it_and_stages_the_rest(world: World) -> None:
    zipped = make_zip(photos())
    raw = bytearray(zipped.getvalue())
    # Damage the middle of a.jpg's compressed data: its CRC no longer matches.
    start = raw.index(b"images/a.jpg") + len("images/a.jpg") + 200
    raw[start : start + 50] = b"\x00" * 50
    batch = bulk.batch_create(
        actor=world.users["curator"],
        project=world.project,
        species=world.leopard,
        zip_file=io.BytesIO(bytes(raw)),
    )
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.INVALID
    rejected = dict(batch.items.exclude(rejected="").values_list("name", "rejected"))
    assert list(rejected) == ["images/a.jpg"] and "cannot be read" in rejected["images/a.jpg"]
    assert batch.items.filter(rejected="").count() == 2


def test_zero_filled_photos_in_a_zip_stage_nothing(world: World, media_root: Path) -> None:
    zeros = {f"images/{i}.jpg": bytes(5_000_000) for i in range(4)}  # 20 MB that compress to ~20 KB
    batch = bulk.batch_create(
        actor=world.users["curator"], project=world.project, species=world.leopard, zip_file=make_zip(zeros)
    )
    check.run(batch.pk)
    staged = [p for p in (media_root / "uploads" / str(batch.pk)).glob("*") if p.name != "photos.zip"]
    assert staged == []
    assert batch.items.exclude(rejected="").count() == 4
    assert all("not an image" in r for r in batch.items.values_list("rejected", flat=True))


def test_staged_photos_of_abandoned_uploads_are_removed(world: World, media_root: Path) -> None:
    abandoned = new_batch(world, csv=BAD_CSV)
    check.run(abandoned.pk)
    done = new_batch(world, csv=GOOD_CSV.replace("Rhino Ridge", "Elsewhere"), files={})
    folder = media_root / "uploads" / str(abandoned.pk)
    assert list(folder.glob("*.jpg"))
    UploadBatch.objects.filter(pk=abandoned.pk).update(updated_at=timezone.now() - dt.timedelta(days=15))
    UploadBatch.objects.filter(pk=done.pk).update(state=BatchState.DONE)
    assert receive.purge_abandoned(dt.timedelta(days=14)) == [abandoned.pk]
    abandoned.refresh_from_db()
    assert not list(folder.glob("*.jpg")) and not list(folder.glob("*.zip")) and not abandoned.source_zip
    assert abandoned.state == BatchState.FAILED and "Send them again" in abandoned.error
    # A recent batch is left alone, and the emptied one can take its photos again.
    assert receive.purge_abandoned(dt.timedelta(days=14)) == []
    bulk.batch_add_photo(
        actor=world.users["curator"],
        batch=abandoned,
        name="images/a.jpg",
        stream=io.BytesIO(photos()["images/a.jpg"]),
    )
