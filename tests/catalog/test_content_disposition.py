"""Content-Disposition from names users chose (an uploaded photo's file name, a species' scientific name in
the MARK export): quoted or encoded by Django, so a crafted name never adds a parameter or a header."""

from __future__ import annotations

from email.message import Message

import pytest
from django.test import Client

from catalog import services
from tests.conftest import World, photo_bytes, upload

CRAFTED = "a\";filename*=UTF-8''evil.html;x=\".jpg"
NAMES = [
    CRAFTED,
    "léopard de nuit 夜.jpg",  # non-ASCII: RFC 5987 filename*
    "trap\r\nSet-Cookie: stolen=1.jpg",  # CR/LF: encoded, never a second header
    'back\\slash "quoted".jpg',
]


def disposition(value: str) -> tuple[str | None, list[str], str | None]:
    """(type, names of its filename parameters, the file name a mail/HTTP parser reads from it)."""
    message = Message()
    message["Content-Disposition"] = value
    params = message.get_params(header="content-disposition") or []
    names = [key for key, _ in params[1:] if key.lower().startswith("filename")]
    return message.get_content_disposition(), names, message.get_filename()


def test_the_parser_sees_the_injection_in_the_old_header() -> None:
    # What media_file used to write: the crafted name ends the quoted string and adds two parameters.
    kind, names, filename = disposition(f'inline; filename="{CRAFTED}"')
    assert kind == "inline" and len(names) == 2 and filename != CRAFTED


@pytest.mark.parametrize("name", NAMES)
def test_original_photo_name_is_one_quoted_or_encoded_parameter(world: World, name: str) -> None:
    sighting = services.sighting_create(
        actor=world.users["curator"],
        project=world.project,
        data=services.SightingData(observed_at=world.sighting.observed_at, latitude=-1.2, longitude=35.1),
        photos=[upload(name, photo_bytes(seed=91))],
    )
    asset = sighting.media_assets.get()
    assert asset.original_filename == name
    client = Client()
    client.force_login(world.users["curator"])
    response = client.get(f"/media/{asset.pk}/original/")
    assert response.status_code == 200
    header = response["Content-Disposition"]
    assert "\r" not in header and "\n" not in header
    assert "Set-Cookie" not in response.headers and "stolen" not in str(response.cookies)
    kind, names, filename = disposition(header)
    assert kind == "inline"
    assert names == ["filename"]  # exactly one: filename="..." or filename*=utf-8''...
    assert filename == name  # and it says the whole name back
    if name.isascii() and "\r" not in name:
        assert header.startswith('inline; filename="') and header.endswith('"')
    else:
        assert header.startswith("inline; filename*=utf-8''")


@pytest.mark.parametrize("scientific_name", ['Panthera "pardus"; x=.html', "Panthera pardus ♀ Ørsted"])
def test_mark_export_name_is_one_quoted_or_encoded_parameter(world: World, scientific_name: str) -> None:
    world.leopard.scientific_name = scientific_name
    world.leopard.save()
    client = Client()
    client.force_login(world.users["curator"])
    response = client.get(
        f"/projects/{world.project.pk}/population/mark.inp",
        {"species": str(world.leopard.pk), "boundaries": "2026-02-01, 2026-03-01, 2026-04-01"},
    )
    assert response.status_code == 200, response.content
    kind, names, filename = disposition(response["Content-Disposition"])
    assert kind == "attachment"
    assert names == ["filename"]
    assert filename == f"big-cats-{scientific_name.replace(' ', '_')}.inp"
