"""URLs the API schema documents answer their errors in JSON, like the API's own views, also where no view
runs: a path no route matches (resight.http.errors) and the request guards (resight.http.middleware). Pages
keep their HTML error pages."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import World


@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/1.5/",  # the router's ids refuse dots
        "/api/identity-changes/-3.0/undo/",
        "/api/projects/a/b/",  # an id with a slash (sent as %2F)
        "/api/no-such-endpoint/",
        "/media/-1/preview/",  # the route's <int:pk> refuses the sign
        "/media/1/2/3/",
        "/annotations/x/crop/",
        "/annotations/-180/crop/",
        "/annotations/1%0A/crop/",  # a newline in the id
    ],
)
def test_an_api_url_that_matches_no_route_is_a_json_404(world: World, path: str) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_pages_keep_their_html_404(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    for path in ("/sightings/abc/", "/annotations/x/match/", "/no-such-page/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("text/html"), path


def test_a_nul_in_the_query_string_of_a_photo_url_is_a_json_400(world: World) -> None:
    client = Client()
    client.force_login(world.users["curator"])
    response = client.get(f"/media/{world.asset.pk}/preview/", {"x": "\x00"})
    assert response.status_code == 400 and response.json()["detail"].startswith("The query string holds")
    page = client.get("/individuals/", {"x": "\x00"})
    assert page.status_code == 400 and page["Content-Type"].startswith("text/plain")
