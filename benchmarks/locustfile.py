"""The load scenario of benchmarks/load.py (locust): a mix of roles on the demo catalogue.

- Curators browse pages, search, open individuals and the review queue, poll match jobs, record decisions.
- Viewers browse pages and search.
- Contributors post new sightings with a photo through the API and poll the match job it starts.
- Scripts read the API.

Page reads are named "page: ..." so that load.py can report them apart from writes and API calls.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
from typing import Any

import django
from locust import HttpUser, between, events, task

django.setup()  # the demo's password and synthetic photos come from the catalog app (no database used)

from catalog import demo, synthetic  # noqa: E402

_seeds = itertools.count(100_000)

# Every response time (ms) by kind and whether it failed, written where load.py reads it (LOAD_SAMPLES):
# locust's CSV has percentiles per request name only, not for all page reads together.
_samples: dict[str, list[float]] = {}


def _kind(name: str, method: str) -> str:
    if name in ("sign in", "api: token", "page: login"):
        return "sign-in"  # password hashing, once per user, during the ramp-up
    if method != "GET":
        return "write"
    return "page" if name.startswith("page:") else "api"


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, exception: Any, **kwargs: Any) -> None:
    _samples.setdefault(_kind(name, request_type), []).append(response_time)
    if name.startswith("page:"):
        _samples.setdefault(name, []).append(response_time)  # each page apart, to find the slow ones
    if exception is not None:
        _samples.setdefault("errors", []).append(1.0)


@events.spawning_complete.add_listener
def _measure_from_here(**kwargs: Any) -> None:
    """Every user is signed in: the steady state starts (locust's --reset-stats does the same to its own)."""
    _samples.clear()


@events.quitting.add_listener
def _write(**kwargs: Any) -> None:
    if path := os.environ.get("LOAD_SAMPLES"):
        with open(path, "w") as out:
            json.dump(_samples, out)


class Browser(HttpUser):
    abstract = True
    wait_time = between(0.5, 2.0)
    username = "viewer"

    def on_start(self) -> None:
        page = self.client.get("/login/", name="page: login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None, "the sign-in page has no CSRF token"
        self.client.post(
            "/login/",
            {
                "username": self.username,
                "password": demo.DEMO_PASSWORD,
                "csrfmiddlewaretoken": token.group(1),
            },
            headers={"Referer": f"{self.host}/login/"},
            name="sign in",
        )
        individuals = self.client.get("/api/individuals/", name="api: individuals").json()["results"]
        self.individual_ids = [i["id"] for i in individuals] or [1]

    @task(4)
    def dashboard(self) -> None:
        self.client.get("/", name="page: dashboard")

    @task(3)
    def individuals(self) -> None:
        self.client.get("/individuals/", name="page: individuals")

    @task(3)
    def individual(self) -> None:
        self.client.get(f"/individuals/{random.choice(self.individual_ids)}/", name="page: individual")

    @task(3)
    def sightings(self) -> None:
        self.client.get("/sightings/", name="page: sightings")

    @task(2)
    def search(self) -> None:
        self.client.get(
            "/sightings/", params={"q": random.choice(["Musiara", "Talek", "Ridge"])}, name="page: search"
        )


class Viewer(Browser):
    weight = 3
    username = "viewer"


class Curator(Browser):
    weight = 2
    username = "curator"

    @task(2)
    def review(self) -> None:
        self.client.get("/review/", name="page: review")

    @task(2)
    def poll_and_decide(self) -> None:
        jobs = self.client.get("/api/match-jobs/", params={"state": "done"}, name="api: match jobs").json()
        if jobs["results"]:
            job = random.choice(jobs["results"])
            self.client.get(f"/match-jobs/{job['id']}/", name="page: match job")
            # A skip: recorded like every decision (append-only log) without changing anyone's identity.
            self.client.post(
                f"/api/match-jobs/{job['id']}/decide/",
                json={"kind": "skip"},
                headers={"X-CSRFToken": self.client.cookies.get("csrftoken", "")},
                name="api: decide",
            )


class Contributor(HttpUser):
    """New sightings with a photo through the API, as a field app would send them."""

    weight = 1
    wait_time = between(2.0, 5.0)

    def on_start(self) -> None:
        answer = self.client.post(
            "/api/auth/token/",
            json={"username": "curator", "password": demo.DEMO_PASSWORD},
            name="api: token",
        )
        self.client.headers["Authorization"] = f"Token {answer.json()['token']}"
        self.project = self.client.get("/api/projects/", name="api: projects").json()["results"][0]["id"]
        species = self.client.get("/api/species/", params={"search": "Panthera"}, name="api: species")
        self.species = species.json()["results"][0]["id"]

    @task
    def new_sighting(self) -> None:
        seed = next(_seeds)
        sighting = self.client.post(
            "/api/sightings/",
            json={
                "project": self.project,
                "observed_at": "2026-11-01T06:00:00+03:00",
                "latitude": -1.4,
                "longitude": 35.1,
            },
            name="api: new sighting",
        ).json()
        shot = synthetic.render(synthetic.make_pattern(seed=1000 + seed % 4), seed=seed, size=(640, 480))
        asset = self.client.post(
            "/api/media-assets/",
            data={"project": self.project, "sighting": sighting["id"]},
            files={"file": (f"cam-{seed}.jpg", shot.jpeg, "image/jpeg")},
            name="api: upload photo",
        ).json()
        x, y, width, height = shot.box
        annotation = self.client.post(
            "/api/annotations/",
            json={
                "media_asset": asset["id"],
                "species": self.species,
                "x": x,
                "y": y,
                "width": width,
                "height": height,
            },
            name="api: new annotation",
        ).json()
        self.client.get("/api/match-jobs/", params={"annotation": annotation["id"]}, name="api: poll job")


class Script(HttpUser):
    """An external tool reading the API with a token."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        answer = self.client.post(
            "/api/auth/token/", json={"username": "viewer", "password": demo.DEMO_PASSWORD}, name="api: token"
        )
        self.client.headers["Authorization"] = f"Token {answer.json()['token']}"

    @task
    def read(self) -> None:
        self.client.get("/api/sightings/", name="api: sightings")
        self.client.get("/api/individuals/", name="api: individuals")
