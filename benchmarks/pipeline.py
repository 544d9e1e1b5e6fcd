"""Upload-to-candidates on a catalogue of N identified annotations: the time a match job takes in the worker
(embed the query, filtered kNN in pgvector, local re-rank of the shortlist, fusion), cold and warm.

    RESIGHT_DB_NAME=resight_bench python -m benchmarks.pipeline [--catalogue 10000] [--jobs 5]

The catalogue is 40 real (drawn) photos of 8 individuals, embedded by the model, plus N - 40 annotations with
vectors near other cluster centres, so the kNN runs over N rows of the species while the re-rank decodes real
photos. "cold": the shortlist's local features are extracted during the job; "warm": they are cached, as they
are once the bulk worker has prepared every annotation.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.conf.settings")
os.environ.setdefault("RESIGHT_DB_NAME", "resight_bench")
# A broker folder of its own: tasks enqueued here must never reach the running platform's workers.
os.environ.setdefault("RESIGHT_BROKER_DIR", tempfile.mkdtemp(prefix="resight-bench-broker-"))
# Photos of the kept catalogue stay next to its database, so a later run can decode them again.
os.environ.setdefault(
    "RESIGHT_MEDIA_ROOT", str(Path(os.environ.get("RESIGHT_STATE_DIR", ".state")) / "bench-media")
)

import django

django.setup()

import numpy as np  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from pgvector import HalfVector  # noqa: E402

from catalog import services, synthetic  # noqa: E402
from catalog.models import Annotation, Species  # noqa: E402
from identification.matching import pipeline, spaces, store  # noqa: E402
from identification.matching import services as matching_services  # noqa: E402
from identification.models import AnnotationEmbedding, LocalFeatureSet, MatchJob  # noqa: E402
from resight.models import Membership, Organization, Project, Role  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def photo_upload(individual: int, seed: int) -> tuple[synthetic.Photo, services.PhotoUpload]:
    shot = synthetic.render(synthetic.make_pattern(7000 + individual), seed=seed)
    return shot, services.PhotoUpload(f"b{individual}-{seed}.jpg", io.BytesIO(shot.jpeg))


def build(n: int) -> tuple[Project, Species, Any]:
    org, _ = Organization.objects.get_or_create(slug="pipeline-bench", defaults={"name": "Pipeline bench"})
    user, created = get_user_model().objects.get_or_create(username="pipeline-bench")
    if created:
        Membership.objects.create(user=user, organization=org, role=Role.CURATOR)
    project, _ = Project.objects.get_or_create(
        organization=org, slug=f"cat-{n}", defaults={"name": f"Cat {n}"}
    )
    species, _ = Species.objects.get_or_create(
        scientific_name="Bench pardus", defaults={"common_name": "Bench"}
    )
    if Annotation.objects.filter(media_asset__project=project).count() >= n:
        return project, species, user
    space = spaces.active_space()
    real = []
    for i in range(8):
        individual = services.individual_create(actor=user, project=project, species=species, code=f"R{i}")
        for s in range(5):
            shot, upload = photo_upload(i, s)
            sighting = services.sighting_create(
                actor=user,
                project=project,
                photos=[upload],
                data=services.SightingData(observed_at=T0),
            )
            real.append(
                services.annotation_create(
                    actor=user,
                    media_asset=sighting.media_assets.get(),
                    species=species,
                    box=shot.box,
                    individual=individual,
                )
            )
    vectors = store.embed(real, space)
    filler_individual = services.individual_create(actor=user, project=project, species=species, code="FILL")
    template = real[0]
    rng = np.random.default_rng(1)
    centres = np.stack(list(vectors.values()))
    fill = n - len(real)
    rows = Annotation.objects.bulk_create(
        [
            Annotation(
                media_asset=template.media_asset,
                sighting=template.sighting,
                species=species,
                x=0,
                y=0,
                width=10,
                height=10,
                individual=filler_individual,
            )
            for _ in range(fill)
        ]
    )
    noise = rng.normal(size=(fill, space.dim)).astype(np.float32)
    far = -centres[rng.integers(len(centres), size=fill)] + 0.5 * noise / np.sqrt(space.dim)
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    AnnotationEmbedding.objects.bulk_create(
        [
            AnnotationEmbedding(
                annotation=a,
                space=space,
                vector=HalfVector(v),
                project_id=project.pk,
                species_id=species.pk,
                viewpoint="unknown",
                body_part="",
            )
            for a, v in zip(rows, far, strict=True)
        ],
        batch_size=2000,
    )
    # Fresh statistics, as autovacuum would gather them in time: with the stale ones of an empty catalogue
    # the planner estimates one row per table and walks all embeddings of the space once per annotation.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return project, species, user


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--catalogue", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    project, species, user = build(args.catalogue)
    print(f"catalogue: {Annotation.objects.filter(media_asset__project=project).count()} annotations")
    print(f"{'run':<6}{'job s (median)':>16}{'x warm':>8}")
    results = {}
    # Query photos new to this run: a rerun on the kept catalogue must not upload the same photos again.
    run = MatchJob.objects.filter(annotation__media_asset__project=project).count()
    for label in ("cold", "warm"):
        if label == "cold":
            for fs in LocalFeatureSet.objects.filter(annotation__media_asset__project=project):
                fs.file.delete(save=False)
                fs.delete()
        times = []
        for j in range(args.jobs):
            shot, upload = photo_upload(j % 8, 100 + run + j + (50 if label == "warm" else 0))
            sighting = services.sighting_create(
                actor=user,
                project=project,
                photos=[upload],
                data=services.SightingData(observed_at=T0),
            )
            query = services.annotation_create(
                actor=user, media_asset=sighting.media_assets.get(), species=species, box=shot.box
            )
            job = matching_services.match_job_start(
                actor=user, annotation=query, filters={"same_viewpoint": False}
            )
            start = time.perf_counter()
            pipeline.run(job.pk)
            times.append(time.perf_counter() - start)
            assert MatchJob.objects.get(pk=job.pk).state == "done"
        results[label] = float(np.median(times))
    for label, value in results.items():
        print(f"{label:<6}{value:>16.2f}{value / results['warm']:>8.2f}")


if __name__ == "__main__":
    main()
