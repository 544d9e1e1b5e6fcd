"""The web tier and beat never import torch (about 0.6 GB in every gunicorn process and in beat): models load
only in workers. A fresh process loads the WSGI application and every task module beat loads, then serves
what a user does in the browser and through the API (every page reachable by links, a new photo with its box
and its match job), and reports which heavy modules it imported.

Checked at run time rather than by an import contract: the model interfaces (`ml_service.embedding`,
`local_features`, `segmentation`) are imported by the web tier on purpose and import torch inside the methods
that build or run a network, which a static contract cannot tell from an import at module level."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings

from catalog import synthetic
from identification.models import EmbeddingSpace
from tests.conftest import Catalogue, make_user
from tests.worker import empty_broker, process_env

HEAVY = ("torch", "torchvision", "timm", "kornia", "onnxruntime", "segment_anything")

SCRIPT = textwrap.dedent(
    """
    import json, re, sys
    from collections import deque

    import django

    django.setup()
    from resight.conf.wsgi import application  # noqa: F401  (what gunicorn loads)
    from resight.conf.celery import app

    app.loader.import_default_modules()  # what beat (and every worker) imports: the tasks modules
    from django.contrib.auth import get_user_model
    from django.test import Client

    args = json.loads(sys.argv[1])
    culprits = []  # the first request after which a heavy module was loaded


    def note(what):
        if not culprits and {m.split(".")[0] for m in sys.modules} & set(args["heavy"]):
            culprits.append(what)

    client = Client(HTTP_HOST="localhost")
    client.force_login(get_user_model().objects.get(username=args["username"]))

    # Every page a user reaches by links from the home page (GET only, as a browser would).
    seen, todo, failed = set(), deque(["/"]), []
    while todo and len(seen) < 120:
        url = todo.popleft()
        if url in seen:
            continue
        seen.add(url)
        response = client.get(url)
        note(url)
        if response.status_code >= 500:
            failed.append((url, response.status_code))
        if "text/html" in response.get("Content-Type", ""):
            for link in re.findall(r'href="(/[^"#]*)"', response.content.decode()):
                if not link.startswith(("//", "/static/", "/admin/", "/api/docs")) and "logout" not in link:
                    todo.append(link.replace("&amp;", "&"))

    # A new photo of an animal with its box, and its match job, through the API.
    asset = client.post(
        "/api/media-assets/",
        {"project": args["project"], "sighting": args["sighting"], "file": open(args["photo"], "rb")},
    )
    note("POST /api/media-assets/")
    box = dict(zip(("x", "y", "width", "height"), args["box"]))
    annotation = client.post(
        "/api/annotations/",
        {"media_asset": asset.json()["id"], "species": args["species"], **box},
        content_type="application/json",
    )
    note("POST /api/annotations/")
    job = client.post(
        "/api/match-jobs/", {"annotation": annotation.json()["id"]}, content_type="application/json"
    )
    note("POST /api/match-jobs/")
    # An operator switches matching to another published model: its space is created here, filled by a worker.
    adopted = client.post("/models/adopt/", {"model": "imagenet-mobilenetv2"})
    note("POST /models/adopt/")
    for path in ("/api/", "/api/sightings/", "/api/individuals/", "/api/match-jobs/"):
        if client.get(path).status_code >= 500:
            failed.append((path, 500))
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(args["heavy"]))
    print(json.dumps({
        "pages": len(seen),
        "failed": failed,
        "writes": [asset.status_code, annotation.status_code, job.status_code, adopted.status_code],
        "heavy": heavy,
        "loaded_by": culprits,
    }))
    """
)


@pytest.mark.django_db(transaction=True)
def test_web_tier_and_beat_never_import_torch(catalogue: Catalogue, tmp_path) -> None:
    world = catalogue.world
    operator = make_user("operator-light", is_staff=True, is_superuser=True)
    shot = synthetic.render(synthetic.make_pattern(seed=7), seed=3, size=(640, 480))
    photo = tmp_path / "new.jpg"
    photo.write_bytes(shot.jpeg)
    # As on a fresh install, no space is active: the first match job names the model and makes its space
    # the active one, in the web process.
    EmbeddingSpace.objects.update(is_active=False)
    empty_broker()  # the match job's message goes to the tests' broker, which no worker reads here
    env = process_env(Path(settings.MEDIA_ROOT))
    args = {
        "username": operator.username,
        "project": world.project.pk,
        "sighting": world.sighting.pk,
        "species": world.leopard.pk,
        "photo": str(photo),
        "box": list(shot.box),
        "heavy": HEAVY,
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == [], report
    assert report["writes"] == [201, 201, 201, 302], report
    assert EmbeddingSpace.objects.filter(model_name="imagenet-mobilenetv2").exists()
    assert EmbeddingSpace.objects.filter(is_active=True).exists()
    assert report["pages"] >= 20, report  # the crawl reached the site, not just a sign-in page
    assert report["heavy"] == [], f"the web tier imported {report['heavy']}: {report['loaded_by']}"
