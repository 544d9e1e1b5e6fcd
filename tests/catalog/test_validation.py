"""Every value is validated where it is written (the services and models every surface uses), and stored
values are rendered defensively: no input may store something that later takes a page down.

Regression tests for the stored denial of service (a time far out of range, typed, from EXIF or from a
bulk CSV; a time zone such as /etc/passwd set by PATCH), then property-based tests (hypothesis) over the
write-side validators."""

from __future__ import annotations

import datetime as dt
import io
import math
import zoneinfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from catalog import images, services, validators
from catalog.bulk import check
from catalog.bulk import services as bulk
from catalog.models import BatchState, Sighting
from tests.conftest import World, make_zip, photo_bytes, upload

PAGES = ["/", "/individuals/", "/api/sightings/", "/api/media-assets/"]
# The suite's profile (tests/conftest.py), plus: database fixtures are set up per test, not per example.
DB_SETTINGS = settings(
    max_examples=30,
    suppress_health_check=[*settings().suppress_health_check, HealthCheck.function_scoped_fixture],
)


def member_pages_answer(world: World, *extra: str) -> None:
    """The pages every member opens still answer, for the curator and for the operator."""
    for username in ("curator", "viewer"):
        client = Client()
        client.force_login(world.users[username])
        for url in [*PAGES, f"/projects/{world.project.pk}/", *extra]:
            response = client.get(url)
            assert response.status_code == 200, (username, url, response.status_code)


def raw_exif(jpeg: bytes, taken: str, offset: str | None = None) -> bytes:
    """The photo with EXIF DateTimeOriginal (and OffsetTimeOriginal) written as given: any camera string."""
    with Image.open(io.BytesIO(jpeg)) as img:
        exif = img.getexif()
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
        ifd[ExifTags.Base.DateTimeOriginal] = taken
        if offset is not None:
            ifd[ExifTags.Base.OffsetTimeOriginal] = offset
        out = io.BytesIO()
        img.save(out, format="JPEG", exif=exif)
        return out.getvalue()


def test_a_year_9999_time_typed_in_a_minus_12_zone_is_refused_with_a_message(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    photo = io.BytesIO(photo_bytes(seed=301))
    photo.name = "p.jpg"
    before = Sighting.objects.count()
    response = client.post(
        "/sightings/new/",
        {
            "project": world.project.pk,
            "observed_at": "9999-12-31T23:00",
            "time_zone": "Etc/GMT+12",
            "photos": [photo],
        },
    )
    assert response.status_code == 400
    assert "is not plausible" in response.content.decode()
    assert Sighting.objects.count() == before
    member_pages_answer(world)


@pytest.mark.parametrize(
    ("taken", "offset"),
    [("9999:12:31 23:00:00", "-12:00"), ("0001:01:01 00:00:00", "+01:00"), ("2999:01:01 00:00:00", None)],
)
def test_an_implausible_camera_time_is_ignored_not_stored(world: World, taken: str, offset: str) -> None:
    data = raw_exif(photo_bytes(seed=302), taken, offset)
    inspected = images.inspect(data, max_pixels=10**8)
    assert services.exif_time(inspected) is None
    with pytest.raises(ValidationError, match="no usable camera time"):
        services.sighting_create(
            actor=world.users["curator"],
            project=world.project,
            data=services.SightingData(),
            photos=[upload("cam.jpg", data)],
        )
    # With a time given, the photo is kept; its impossible EXIF time is not.
    sighting = services.sighting_create(
        actor=world.users["curator"],
        project=world.project,
        data=services.SightingData(observed_at=dt.datetime(2025, 5, 1, tzinfo=dt.UTC)),
        photos=[upload("cam.jpg", data)],
    )
    assert sighting.media_assets.get().exif_taken_at is None
    member_pages_answer(world, f"/sightings/{sighting.pk}/")


def test_a_bulk_csv_row_far_out_of_range_fails_the_dry_run(world: World) -> None:
    csv = (
        "file,time,time_zone,species\n"
        "images/a.jpg,9999-12-31 23:00,Etc/GMT+12,Leopard\n"
        "images/b.jpg,2025-01-01 10:00,../../x,Leopard\n"
    )
    files = {f"images/{n}.jpg": photo_bytes(seed=310 + i) for i, n in enumerate("ab")}
    batch = bulk.batch_create(
        actor=world.users["curator"],
        project=world.project,
        csv_file=io.BytesIO(csv.encode()),
        zip_file=make_zip(files),
    )
    check.run(batch.pk)
    batch.refresh_from_db()
    assert batch.state == BatchState.INVALID
    by_file = {p["file"]: p["message"] for p in batch.problems}
    assert "is not plausible" in by_file["images/a.jpg"]
    assert "Unknown time zone" in by_file["images/b.jpg"]


@pytest.mark.parametrize("zone", ["/etc/passwd", "../../x", "zone.tab", "Mars/Olympus", "utc\x00"])
def test_a_time_zone_that_is_no_iana_name_is_refused_by_patch(world: World, api_client_for, zone) -> None:
    client = api_client_for(world.users["curator"])
    response = client.patch(f"/api/sightings/{world.sighting.pk}/", {"time_zone": zone}, format="json")
    assert response.status_code == 400, response.content
    world.sighting.refresh_from_db()
    assert world.sighting.time_zone == "UTC"


def test_a_stored_unknown_time_zone_is_shown_in_utc_and_never_fails_a_page(world: World) -> None:
    # Rows written before validation existed may hold anything; the database is written directly here.
    Sighting.objects.filter(pk=world.sighting.pk).update(time_zone="/etc/passwd")
    member_pages_answer(
        world, f"/sightings/{world.sighting.pk}/", f"/individuals/{world.leopard_individual.pk}/"
    )
    client = Client()
    client.force_login(world.users["curator"])
    assert "2026-03-01 06:00:00" in client.get(f"/sightings/{world.sighting.pk}/").content.decode()


def test_the_database_itself_refuses_a_time_python_could_not_load(world: World) -> None:
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE catalog_sighting SET observed_at = '9999-12-31 23:00-12:00' WHERE id = %s",
            [world.sighting.pk],
        )


def test_population_dates_far_out_of_range_are_a_form_error(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    params = {"species": str(world.leopard.pk), "start": "0001-01-01", "end": "9999-12-31"}
    page = client.get(f"/projects/{world.project.pk}/population/", params)
    assert page.status_code == 200 and "is outside 1900-01-01" in page.content.decode()
    mark = client.get(f"/projects/{world.project.pk}/population/mark.inp", params)
    assert mark.status_code == 400
    bad = client.get(
        f"/projects/{world.project.pk}/population/",
        {"species": str(world.leopard.pk), "boundaries": "2026-02-30, x"},
    )
    assert bad.status_code == 200 and "Invalid isoformat" not in bad.content.decode()


# --- properties of the validators -----------------------------------------------------------------------

zone_names = st.sampled_from(sorted(zoneinfo.available_timezones()))


@given(st.one_of(st.text(max_size=80), zone_names))
def test_a_time_zone_is_accepted_exactly_when_it_is_an_iana_name(name: str) -> None:
    try:
        validators.validate_time_zone(name)
    except ValidationError:
        assert name not in zoneinfo.available_timezones() and name != "UTC"
    else:
        zoneinfo.ZoneInfo(name)  # and it loads


@given(st.datetimes(timezones=st.timezones()), zone_names)
def test_an_accepted_time_can_be_stored_converted_and_shown_in_any_zone(
    value: dt.datetime, zone: str
) -> None:
    try:
        validators.validate_observation_time(value)
    except ValidationError as exc:
        message = exc.messages[0]
    else:
        message = ""
    if message:
        assert "%(" not in message  # parameters filled in
        return
    assert validators.EARLIEST_TIME <= value <= validators.latest_time()
    shown = value.astimezone(zoneinfo.ZoneInfo(zone))
    assert f"{shown:%Y-%m-%d %H:%M %z}"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_an_uncertainty_is_a_finite_distance_on_earth(value: float) -> None:
    try:
        validators.validate_uncertainty(value)
    except ValidationError:
        assert not (math.isfinite(value) and 0 <= value <= validators.MAX_UNCERTAINTY_M)
    else:
        assert 0 <= value <= validators.MAX_UNCERTAINTY_M


@given(
    observed_at=st.datetimes(
        min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()
    ),
    zone=st.one_of(zone_names, st.text(max_size=20)),
    latitude=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    longitude=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    uncertainty=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    text=st.text(max_size=250),
)
@DB_SETTINGS
def test_a_sighting_is_either_refused_with_a_message_or_stored_and_shown(
    world: World, observed_at, zone, latitude, longitude, uncertainty, text
) -> None:
    try:
        sighting = services.sighting_create(
            actor=world.users["curator"],
            project=world.project,
            data=services.SightingData(
                observed_at=observed_at,
                time_zone=zone,
                latitude=latitude,
                longitude=longitude,
                location_uncertainty_m=uncertainty,
                location_name=text,
                notes=text,
            ),
        )
    except ValidationError as exc:
        refused = exc.message_dict
    else:
        refused = {}
    if refused:
        return
    client = Client()
    client.force_login(world.users["curator"])
    assert client.get(f"/sightings/{sighting.pk}/").status_code == 200
    assert client.get(f"/api/sightings/{sighting.pk}/").status_code == 200


@given(
    x=st.integers(-(2**40), 2**40),
    y=st.integers(-(2**40), 2**40),
    w=st.integers(-(2**40), 2**40),
    h=st.integers(-(2**40), 2**40),
    body_part=st.text(max_size=80),
)
@DB_SETTINGS
def test_a_box_is_either_inside_the_photo_or_refused(world: World, x, y, w, h, body_part) -> None:
    try:
        annotation = services.annotation_create(
            actor=world.users["curator"],
            media_asset=world.asset,
            species=world.zebra,
            box=(x, y, w, h),
            body_part=body_part,
            match_now=False,
        )
    except ValidationError as exc:
        refused = exc.message_dict
    else:
        refused = {}
    if refused:
        return
    asset = world.asset
    assert annotation.x >= 0 and annotation.x + annotation.width <= asset.width
    assert annotation.y >= 0 and annotation.y + annotation.height <= asset.height


def test_pillows_pixel_limit_follows_the_setting(settings) -> None:
    assert Image.MAX_IMAGE_PIXELS == settings.RESIGHT_MAX_IMAGE_PIXELS
    big = Image.new("L", (10_000, 9_500))  # 95 megapixels: over Pillow's default 89.5, under 120
    out = io.BytesIO()
    big.save(out, format="PNG")
    assert images.inspect(out.getvalue(), max_pixels=120_000_000).width == 10_000
    with pytest.raises(images.ImageRejected, match="too many pixels"):
        images.inspect(out.getvalue(), max_pixels=90_000_000)
