"""The API root links to API endpoints only: its route names live in the `api` URL namespace, apart from the
HTML pages' names (species-list, individual-list, ...), so reverse() cannot hand it a page."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from resight.conf.urls import router
from tests.conftest import World


def test_every_link_of_the_api_root_is_an_api_endpoint_answering_json(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    root = client.get("/api/", HTTP_ACCEPT="application/json")
    assert root.status_code == 200
    links = root.json()
    assert set(links) == {prefix for prefix, _, _ in router.registry}
    for name, url in links.items():
        assert url.startswith(("/api/", "http://testserver/api/")), (name, url)
        response = client.get(url, HTTP_ACCEPT="application/json")
        assert response.status_code == 200, (name, url, response.status_code)
        assert response["Content-Type"].startswith("application/json"), (name, url)
        response.json()


def test_api_and_page_names_no_longer_collide() -> None:
    assert reverse("api:individual-list") == "/api/individuals/"
    assert reverse("api:species-detail", args=[1]) == "/api/species/1/"
    assert reverse("individual-list") == "/individuals/"  # the HTML page keeps its name
    assert reverse("species-list") == "/species/"
    assert reverse("sighting-detail", args=[1]) == "/sightings/1/"
