"""Bad uploads get a clear message (page) or a 400 (API), and leave neither a row nor a file behind."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from PIL import Image

from catalog import drafts, services
from catalog.models import Annotation, MediaAsset, Sighting
from resight.models import AuditEvent
from tests.conftest import World, photo_bytes, upload


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def decompression_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels that compresses to about a hundred kilobytes."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def gif_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(out, format="GIF")
    return out.getvalue()


BAD_FILES = {
    "truncated jpeg": (lambda: photo_bytes(seed=3)[:5000], "damaged or incomplete"),
    "text named .jpg": (lambda: b"this is not a photo, just text\n" * 20, "not an image"),
    "zero bytes": (lambda: b"", "empty"),
    "decompression bomb": (decompression_bomb, "too many pixels"),
    "gif": (gif_bytes, "GIF images are not accepted"),
}


def media_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def counts() -> tuple[int, int, int]:
    return MediaAsset.objects.count(), Sighting.objects.count(), Annotation.objects.count()


@pytest.fixture
def baseline(world: World, media_root: Path):
    return counts(), set(media_files(media_root))


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_via_service(world: World, baseline, media_root: Path, case: str) -> None:
    make, message = BAD_FILES[case]
    with pytest.raises(ValidationError) as err:
        services.sighting_create(
            actor=world.users["curator"],
            project=world.project,
            data=services.SightingData(observed_at=datetime(2026, 1, 1, tzinfo=UTC)),
            photos=[upload("good.jpg", photo_bytes(seed=40)), upload("bad.jpg", make())],
        )
    errors = err.value.message_dict["photos"]
    assert len(errors) == 1 and errors[0].startswith("bad.jpg: ") and message in errors[0], errors
    assert (counts(), set(media_files(media_root))) == baseline


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_via_page(world: World, baseline, media_root: Path, case: str) -> None:
    make, message = BAD_FILES[case]
    client = Client()
    client.force_login(world.users["contributor"])
    good, bad = io.BytesIO(photo_bytes(seed=41)), io.BytesIO(make())
    good.name, bad.name = "good.jpg", "bad.jpg"
    response = client.post(
        "/sightings/new/",
        {
            "project": world.project.pk,
            "time_zone": "UTC",
            "observed_at": "2026-05-01T10:00",
            "photos": [good, bad],
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "bad.jpg" in html and message in html
    assert (counts(), set(media_files(media_root))) == baseline


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_via_api(world: World, baseline, media_root: Path, case: str, api_client_for) -> None:
    make, message = BAD_FILES[case]
    bad = io.BytesIO(make())
    bad.name = "bad.jpg"
    response = api_client_for(world.users["contributor"]).post(
        "/api/media-assets/",
        {"project": world.project.pk, "sighting": world.sighting.pk, "file": bad},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert any(message in e for e in body.get("photos", []) + body.get("file", [])), body
    assert (counts(), set(media_files(media_root))) == baseline


def test_oversized_file_is_refused_everywhere(
    world: World, baseline, media_root: Path, settings, api_client_for
) -> None:
    data = photo_bytes(seed=42)
    settings.RESIGHT_MAX_UPLOAD_BYTES = len(data) - 1
    with pytest.raises(ValidationError, match="larger than"):
        services.media_asset_create(
            actor=world.users["curator"],
            project=world.project,
            photo=upload("big.jpg", data),
            sighting=world.sighting,
        )
    f = io.BytesIO(data)
    f.name = "big.jpg"
    response = api_client_for(world.users["curator"]).post(
        "/api/media-assets/", {"project": world.project.pk, "file": f}, format="multipart"
    )
    assert response.status_code == 400 and "larger than" in str(response.json())
    assert (counts(), set(media_files(media_root))) == baseline


def test_pixel_limit_below_pillows_own(world: World, settings) -> None:
    settings.RESIGHT_MAX_IMAGE_PIXELS = 50_000  # the 320x240 test photo has 76,800
    with pytest.raises(ValidationError, match="megapixels"):
        services.media_asset_create(
            actor=world.users["curator"], project=world.project, photo=upload("p.jpg", photo_bytes(seed=43))
        )


def test_duplicates_are_found_by_content_within_a_project(world: World) -> None:
    data = photo_bytes(seed=44)
    first = services.media_asset_create(
        actor=world.users["curator"], project=world.project, photo=upload("a.jpg", data)
    )
    with pytest.raises(ValidationError, match=rf"Already in the project \(photo {first.pk}"):
        services.media_asset_create(
            actor=world.users["curator"], project=world.project, photo=upload("renamed.jpg", data)
        )
    with pytest.raises(ValidationError, match=r"same photo as one\.jpg"):
        services.sighting_create(
            actor=world.users["curator"],
            project=world.project,
            data=services.SightingData(observed_at=datetime(2026, 1, 1, tzinfo=UTC)),
            photos=[upload("one.jpg", photo_bytes(seed=45)), upload("two.jpg", photo_bytes(seed=45))],
        )
    # Another project may hold the same photo.
    admin = world.users["outsider"]
    other = services.media_asset_create(actor=admin, project=world.other_project, photo=upload("a.jpg", data))
    assert other.sha256 == first.sha256


def test_good_upload_keeps_original_and_reads_exif(world: World, media_root: Path) -> None:
    taken = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    data = photo_bytes(seed=46, taken_at=taken, lat=-2.5, lon=34.25)
    sighting = services.sighting_create(
        actor=world.users["contributor"],
        project=world.project,
        data=services.SightingData(),
        photos=[upload("cam.jpg", data)],
    )
    asset = sighting.media_assets.get()
    assert sighting.observed_at == taken  # taken from EXIF: the form left it empty
    assert (sighting.latitude, sighting.longitude) == pytest.approx((-2.5, 34.25), abs=1e-4)
    assert asset.exif_taken_at == taken
    with asset.file.open("rb") as f:
        assert f.read() == data  # the original, byte for byte
    with asset.preview.open("rb") as f, Image.open(f) as preview:
        assert preview.format == "JPEG" and not preview.getexif().get_ifd(0x8825)  # no GPS in renditions
    assert AuditEvent.objects.filter(action="media_asset.upload", object_id=str(asset.pk)).exists()


def test_exif_orientation_is_applied_for_display(world: World) -> None:
    image = Image.new("RGB", (300, 200), "blue")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    asset = services.media_asset_create(
        actor=world.users["curator"], project=world.project, photo=upload("rotated.jpg", out.getvalue())
    )
    assert (asset.width, asset.height) == (200, 300)
    with asset.preview.open("rb") as f, Image.open(f) as preview:
        assert preview.size == (200, 300)


def test_png_webp_and_heic_are_accepted(world: World) -> None:
    pytest.importorskip("pillow_heif")
    base = Image.open(io.BytesIO(photo_bytes(seed=47)))
    for fmt in ("PNG", "WEBP", "HEIF"):
        out = io.BytesIO()
        base.save(out, format=fmt)
        asset = services.media_asset_create(
            actor=world.users["curator"],
            project=world.project,
            photo=upload(f"x.{fmt.lower()}", out.getvalue()),
        )
        assert asset.image_format == fmt and (asset.width, asset.height) == (320, 240)


def test_sighting_without_any_time_is_refused_clearly(world: World) -> None:
    with pytest.raises(ValidationError, match="the photos carry no usable camera time"):
        services.sighting_create(
            actor=world.users["curator"],
            project=world.project,
            data=services.SightingData(),
            photos=[upload("n.jpg", photo_bytes(seed=48))],
        )


def test_new_sighting_keeps_its_photos_when_a_field_is_wrong_and_asks_to_confirm_odd_values(
    world: World,
) -> None:
    """A time zone mistake does not lose the photos; unusual values are saved only once confirmed; a form
    sent without any photo is refused (the browser's own check bypassed)."""
    client = Client()
    client.force_login(world.users["contributor"])
    photo = io.BytesIO(photo_bytes(seed=901))
    photo.name = "kept.jpg"
    fields = {"project": world.project.pk, "observed_at": "2025-05-01T10:00", "time_zone": "Mars/Olympus"}
    first = client.post("/sightings/new/", {**fields, "photos": [photo]})
    assert first.status_code == 400 and "kept.jpg" in first.content.decode()
    kept = first.context["kept"]
    assert kept and MediaAsset.objects.count() == 2  # nothing stored in the catalogue yet

    odd = {**fields, "time_zone": "UTC", "kept_photos": kept, "latitude": 0, "longitude": 0}
    second = client.post("/sightings/new/", odd)
    assert second.status_code == 400 and "Gulf of Guinea" in second.content.decode()
    third = client.post("/sightings/new/", {**odd, "kept_photos": second.context["kept"], "confirm": "on"})
    assert third.status_code == 302, third.content.decode()[:500]
    assert MediaAsset.objects.filter(original_filename="kept.jpg").count() == 1
    assert drafts.files(world.users["contributor"], second.context["kept"]) == []  # used, then removed

    stranger = Client()
    stranger.force_login(world.users["curator"])
    assert drafts.files(world.users["curator"], kept) == []  # a token is its user's only
    empty = client.post("/sightings/new/", {**fields, "time_zone": "UTC"})
    assert empty.status_code == 400 and "Add at least one photo" in empty.content.decode()


def test_new_sighting_offers_the_only_project_and_its_time_zone(world: World) -> None:
    world.project.time_zone = "Africa/Nairobi"
    world.project.save()
    client = Client()
    client.force_login(world.users["contributor"])
    form = client.get("/sightings/new/").context["form"]
    assert form.initial["project"] == world.project.pk and form.initial["time_zone"] == "Africa/Nairobi"
    assert form.choices_data["species"][world.leopard.pk]["viewpoints"] == ["left", "right"]
