"""pgvector kNN: p50/p95 latency and recall@k of the filtered HNSW search against an exact scan.

Runs in a database of its own on the same server (default `resight_bench`), so the platform's data is never
touched:  RESIGHT_DB_NAME=resight_bench python -m benchmarks.knn --sizes 10000,100000 [--dim 1280]
Vectors are random unit vectors around 200 cluster centres (closer to real embeddings than uniform noise);
the filter keeps one species of three and one project of four, as a requester's match rights would.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.settings")
os.environ.setdefault("RESIGHT_DB_NAME", "resight_bench")
# A broker folder of its own: tasks enqueued here must never reach the running platform's workers.
os.environ.setdefault("RESIGHT_BROKER_DIR", tempfile.mkdtemp(prefix="resight-bench-broker-"))

import django

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species  # noqa: E402
from identification import search  # noqa: E402
from identification.models import AnnotationEmbedding, EmbeddingSpace  # noqa: E402
from resight.models import Organization, Project  # noqa: E402


def populate(n: int, dim: int, rng: np.random.Generator) -> tuple[EmbeddingSpace, list[int], list[int]]:
    table = AnnotationEmbedding._meta.db_table
    org, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    projects = [
        Project.objects.get_or_create(organization=org, slug=f"p{i}", defaults={"name": f"P{i}"})[0]
        for i in range(4)
    ]
    species = [
        Species.objects.get_or_create(scientific_name=f"Bench {i}", defaults={"common_name": f"B{i}"})[0]
        for i in range(3)
    ]
    key = f"bench@{dim}-{n}"
    space = EmbeddingSpace.objects.filter(key=key).first()
    if space is not None and space.embeddings.count() == n:
        return space, [p.pk for p in projects], [s.pk for s in species]
    EmbeddingSpace.objects.filter(key=key).delete()
    space = EmbeddingSpace.objects.create(key=key, model_name="bench", version=f"{dim}-{n}", dim=dim)
    sighting = Sighting.objects.create(project=projects[0], observed_at="2026-01-01T00:00Z")
    asset = MediaAsset.objects.filter(project=projects[0]).first() or MediaAsset.objects.create(
        project=projects[0],
        sighting=sighting,
        original_filename="x.jpg",
        image_format="JPEG",
        sha256="0" * 64,
        size_bytes=1,
        width=100,
        height=100,
    )
    individuals = [
        Individual.objects.get_or_create(project=projects[0], species=s, code=f"b{s.pk}")[0] for s in species
    ]
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    batch = 5000
    started = time.perf_counter()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        which = rng.integers(0, 3, m)
        annotations = Annotation.objects.bulk_create(
            [
                Annotation(
                    media_asset=asset,
                    sighting=sighting,
                    species=species[k],
                    x=0,
                    y=0,
                    width=1,
                    height=1,
                    individual=individuals[k],
                )
                for k in which
            ]
        )
        vectors = centres[rng.integers(0, 200, m)] + 0.6 * rng.normal(size=(m, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (annotation_id, space_id, vector, project_id, species_id, viewpoint, "
                "body_part, created_at) FROM STDIN"
            ) as copy,
        ):
            for a, v, k, p in zip(annotations, vectors, which, rng.integers(0, 4, m), strict=True):
                text = "[" + ",".join(f"{x:.5f}" for x in v) + "]"
                copy.write_row(
                    (a.pk, space.pk, text, projects[p].pk, species[k].pk, "unknown", "", "2026-01-01")
                )
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    search.ensure_index(space)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    print(
        f"  loaded {n} vectors in {load_s:.0f} s, HNSW index built in {time.perf_counter() - started:.0f} s"
    )
    return space, [p.pk for p in projects], [s.pk for s in species]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("-k", type=int, default=20)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(0)
    print(
        f"{'vectors':>9}{'dim':>6}{'filter':>24}{'p50 ms':>9}{'p95 ms':>9}{'exact p50':>11}"
        f"{'speed-up':>10}{'recall@k':>10}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        space, projects, species = populate(n, args.dim, rng)
        flt = search.SearchFilter(species_id=species[0], project_ids=(projects[0],))
        # Queries are new "photos" of catalogued animals: a stored vector of the filtered subset plus noise.
        pool = list(
            space.embeddings.filter(species_id=species[0], project_id=projects[0]).values_list(
                "vector", flat=True
            )[:2000]
        )
        queries = []
        for _ in range(args.queries):
            stored = pool[rng.integers(len(pool))]
            base = np.asarray(stored.to_list() if hasattr(stored, "to_list") else stored, dtype=np.float32)
            q = base + 0.02 * rng.normal(size=args.dim).astype(np.float32)
            queries.append(q / np.linalg.norm(q))
        exact_ids, slow = [], []
        for q in queries:
            t = time.perf_counter()
            exact_ids.append({e.annotation_id for e in search.nearest(space, q, flt, k=args.k, exact=True)})
            slow.append(1000 * (time.perf_counter() - t))
        e50 = float(np.percentile(slow, 50))
        for ef in (64, 100, 200):
            fast, recalls = [], []
            for q, truth in zip(queries, exact_ids, strict=True):
                t = time.perf_counter()
                got = search.nearest(space, q, flt, k=args.k, ef_search=ef)
                fast.append(1000 * (time.perf_counter() - t))
                recalls.append(len({g.annotation_id for g in got} & truth) / max(len(truth), 1))
            p50, p95 = np.percentile(fast, 50), np.percentile(fast, 95)
            label = f"1 sp., 1 proj., ef {ef}"
            print(
                f"{n:>9}{args.dim:>6}{label:>24}{p50:>9.1f}{p95:>9.1f}{e50:>11.1f}"
                f"{e50 / p50:>10.1f}{np.mean(recalls):>10.3f}"
            )


if __name__ == "__main__":
    main()
