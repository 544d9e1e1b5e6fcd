"""A REST client of a running Resight, as an external script would use it (requests, a personal token)."""

from __future__ import annotations

import time
from typing import Any

import requests

from catalog import demo, synthetic


class Api(requests.Session):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    @classmethod
    def signed_in(cls, base: str, username: str) -> Api:
        api = cls(base)
        answer = api.post("/api/auth/token/", json={"username": username, "password": demo.DEMO_PASSWORD})
        answer.raise_for_status()
        api.headers["Authorization"] = f"Token {answer.json()['token']}"
        return api

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        verb = method if isinstance(method, str) else method.decode()
        return super().request(verb, f"{self.base}{url!s}", *args, **kwargs)

    def one(self, path: str, **params: Any) -> dict[str, Any]:
        rows = self.get(path, params=params).json()["results"]
        assert rows, f"nothing at {path} {params}"
        return rows[0]

    def new_photo_of_demo_individual(self, index: int, seed: int) -> dict[str, Any]:
        """A new sighting with one new photo of demo individual `index` (its coat pattern, a new shot) and
        the animal's box: the annotation a match job starts from."""
        project = self.one("/api/projects/", search="Mara")
        species = self.one("/api/species/", search="Panthera pardus")
        sighting = self.post(
            "/api/sightings/",
            json={
                "project": project["id"],
                "observed_at": "2026-11-01T06:00:00+03:00",
                "latitude": -1.40,
                "longitude": 35.05,
            },
        )
        assert sighting.status_code == 201, sighting.text
        shot = synthetic.render(synthetic.make_pattern(seed=1000 + index), seed=seed, size=(640, 480))
        asset = self.post(
            "/api/media-assets/",
            data={"project": project["id"], "sighting": sighting.json()["id"]},
            files={"file": (f"cam-{seed}.jpg", shot.jpeg, "image/jpeg")},
        )
        assert asset.status_code == 201, asset.text
        x, y, width, height = shot.box
        annotation = self.post(
            "/api/annotations/",
            json={
                "media_asset": asset.json()["id"],
                "species": species["id"],
                "x": x,
                "y": y,
                "width": width,
                "height": height,
            },
        )
        assert annotation.status_code == 201, annotation.text
        return annotation.json()

    def match(self, annotation_id: int) -> dict[str, Any]:
        """The annotation's match job: the one that started by itself, else a new one."""
        jobs = self.get("/api/match-jobs/", params={"annotation": annotation_id}).json()["results"]
        if jobs:
            return jobs[0]
        started = self.post("/api/match-jobs/", json={"annotation": annotation_id})
        assert started.status_code == 201, started.text
        return started.json()

    def wait_final(self, job_id: int, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/api/match-jobs/{job_id}/").json()
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} not final after {timeout:.0f} s: {job}")
