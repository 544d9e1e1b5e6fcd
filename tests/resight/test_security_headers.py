"""Security headers without a browser: the Content-Security-Policy on pages, API and media."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from resight.settings import _tile_origin
from tests.conftest import World

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'self'",
    "object-src": "'none'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def test_csp_header_on_pages_api_and_media(world: World) -> None:
    client = Client()
    assert directives(client.get("/login/")["Content-Security-Policy"]) == POLICY  # anonymous pages too
    client.force_login(world.users["curator"])
    responses = {
        "page": client.get(f"/sightings/{world.sighting.pk}/"),
        "api": client.get("/api/individuals/", HTTP_ACCEPT="application/json"),
        "api root": client.get("/api/", HTTP_ACCEPT="application/json"),
        "media": client.get(f"/media/{world.asset.pk}/original/"),
        "crop": client.get(f"/annotations/{world.annotation.pk}/crop/"),
        "docs": client.get("/api/docs/"),
        "not found": client.get("/sightings/999999/"),
    }
    for name, response in responses.items():
        assert response.status_code == (404 if name == "not found" else 200), name
        policy = directives(response["Content-Security-Policy"])
        assert policy == POLICY, name
        assert "unsafe-eval" not in response["Content-Security-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff", name
        assert response["Referrer-Policy"] == "same-origin", name
    assert responses["page"]["X-Frame-Options"] == "DENY"


def test_swagger_ui_loads_its_start_up_script_from_a_url(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    html = client.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    script_url = re.findall(r'<script src="([^"]*\?[^"]*script=[^"]*)"', html)[0].replace("&amp;", "&")
    script = client.get(script_url)
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_tile_server_origin_is_allowed_for_images() -> None:
    assert _tile_origin("https://tile.openstreetmap.org/{z}/{x}/{y}.png") == "https://tile.openstreetmap.org"
    assert (
        _tile_origin("https://{s}.tile.example.org:8443/{z}/{x}/{y}.png") == "https://*.tile.example.org:8443"
    )
    assert _tile_origin("/tiles/{z}/{x}/{y}.png") is None  # our own origin: 'self' covers it
    with pytest.raises(ImproperlyConfigured):
        _tile_origin("https://{r}.example.org/{z}/{x}/{y}.png")
