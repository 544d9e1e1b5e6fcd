"""pgvector kNN: p50/p95 latency and recall@k of the filtered HNSW search against an exact scan.

Runs in a database of its own on the same server (default `resight_bench`), so the platform's data is never
touched:  python -m benchmarks.knn --sizes 10000,100000,1000000 [--dim 1280] [--layout individuals|clusters]
The vectors are synthetic (see `Layout`); the filter keeps one species of three and one project of four, as a
requester's match rights would. A million 1,280-d vectors take ~3 minutes to load and ~13 to index on 2 vCPUs,
and ~6 GB of disk; each size's data is kept and reused by the next run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resight.conf.settings")
os.environ.setdefault("RESIGHT_DB_NAME", "resight_bench")
# A broker folder of its own: tasks enqueued here must never reach the running platform's workers.
os.environ.setdefault("RESIGHT_BROKER_DIR", tempfile.mkdtemp(prefix="resight-bench-broker-"))

import django

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from pgvector import HalfVector  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402

from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species  # noqa: E402
from identification.matching import search  # noqa: E402
from identification.models import AnnotationEmbedding, EmbeddingSpace  # noqa: E402
from resight.models import Organization, Project  # noqa: E402

PHOTOS_PER_INDIVIDUAL = 20


class Layout:
    """How the benchmark's vectors lie, with their species (of 3) and project (of 4); searches keep one each.

    `individuals`, like a catalogue: animals of one species and project with 20 photos each; an animal's
    centre is one of 200 "breed" centres plus its own offset, a photo its centre plus noise, so two photos of
    one animal have cosine ~0.67 and of two animals of a breed ~0.42; queries are new photos of catalogued
    animals. `clusters`, a stress case: every vector one of 200 centres plus noise, whatever its species or
    project, so a query's 20 nearest are near-ties at cosine ~0.74 and any approximate search reorders them.
    """

    def __init__(self, kind: str, n: int, dim: int, rng: np.random.Generator) -> None:
        if kind not in ("individuals", "clusters"):
            raise SystemExit(f"unknown layout {kind!r}: individuals or clusters")
        self.kind, self.n, self.dim, self.rng = kind, n, dim, rng
        self.breeds = rng.normal(size=(200, dim)).astype(np.float32)
        if kind == "individuals":
            count = -(-n // PHOTOS_PER_INDIVIDUAL)
            offsets = np.sqrt(0.6) * rng.normal(size=(count, dim)).astype(np.float32)
            self.animals = self.breeds[np.arange(count) % 200] + offsets

    def _photos(self, animals: np.ndarray) -> np.ndarray:
        noise = np.sqrt(0.8) * self.rng.normal(size=(len(animals), self.dim)).astype(np.float32)
        vectors = self.animals[animals] + noise
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def batch(self, start: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectors `start`..`start + m` with their species and project indices."""
        if self.kind == "individuals":
            animals = np.arange(start, start + m) // PHOTOS_PER_INDIVIDUAL
            return self._photos(animals), animals % 3, (animals // 3) % 4
        vectors = self.breeds[self.rng.integers(0, 200, m)] + 0.6 * self.rng.normal(
            size=(m, self.dim)
        ).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors, self.rng.integers(0, 3, m), self.rng.integers(0, 4, m)

    def queries(self, count: int, stored: list[np.ndarray]) -> list[np.ndarray]:
        """Queries inside the filter (species 0, project 0): new photos of its animals, or (clusters) stored
        vectors of it plus a little noise."""
        if self.kind == "individuals":
            kept = np.arange(0, len(self.animals), 12)  # animal i has species i % 3 and project i // 3 % 4
            return list(self._photos(self.rng.choice(kept, count)))
        out = []
        for _ in range(count):
            q = stored[self.rng.integers(len(stored))] + 0.02 * self.rng.normal(size=self.dim).astype(
                np.float32
            )
            out.append(q / np.linalg.norm(q))
        return out


def populate(layout: Layout, build_memory: str) -> tuple[EmbeddingSpace, list[int], list[int]]:
    n, dim = layout.n, layout.dim
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
    key = f"bench-{layout.kind}@{dim}-{n}"
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
    created = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    batch = 5000
    started = time.perf_counter()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        vectors, which, where = layout.batch(start, m)
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
        # Binary COPY (pgvector's psycopg dumpers): formatting a million 1,280-d vectors as text would
        # take longer than building the index.
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY {table} (annotation_id, space_id, vector, project_id, species_id, viewpoint, "
                "body_part, created_at) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "int8", "halfvec", "int8", "int8", "varchar", "varchar", "timestamptz"])
            for a, v, k, p in zip(annotations, vectors, which, where, strict=True):
                copy.write_row(
                    (a.pk, space.pk, HalfVector(v), projects[p].pk, species[k].pk, "unknown", "", created)
                )
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The HNSW graph must fit in maintenance memory or the build slows down many times over.
        cursor.execute(f"SET maintenance_work_mem = '{build_memory}'")
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
    parser.add_argument("--layout", default="individuals", help="individuals (default) or clusters")
    parser.add_argument("--build-memory", default="6GB", help="maintenance_work_mem for the HNSW build")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    connection.ensure_connection()
    register_vector(connection.connection)
    print(
        f"{args.layout} layout, k={args.k}, {args.queries} queries; filter: 1 species of 3, 1 project of 4\n"
        f"{'vectors':>9}{'dim':>6}{'ef_search':>11}{'p50 ms':>9}{'p95 ms':>9}{'exact p50':>11}"
        f"{'speed-up':>10}{'recall@k':>10}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        layout = Layout(args.layout, n, args.dim, np.random.default_rng(0))
        space, projects, species = populate(layout, args.build_memory)
        flt = search.SearchFilter(species_id=species[0], project_ids=(projects[0],))
        stored = [
            search.as_array(v)
            for v in space.embeddings.filter(species_id=species[0], project_id=projects[0]).values_list(
                "vector", flat=True
            )[:2000]
        ]
        queries = layout.queries(args.queries, stored)
        exact_ids, slow = [], []
        for q in queries:
            t = time.perf_counter()
            exact_ids.append({e.annotation_id for e in search.nearest(space, q, flt, k=args.k, exact=True)})
            slow.append(1000 * (time.perf_counter() - t))
        e50 = float(np.percentile(slow, 50))
        for ef in (64, 200, 400):
            fast, recalls = [], []
            for q, truth in zip(queries, exact_ids, strict=True):
                t = time.perf_counter()
                got = search.nearest(space, q, flt, k=args.k, ef_search=ef)
                fast.append(1000 * (time.perf_counter() - t))
                recalls.append(len({g.annotation_id for g in got} & truth) / max(len(truth), 1))
            p50, p95 = np.percentile(fast, 50), np.percentile(fast, 95)
            print(
                f"{n:>9}{args.dim:>6}{ef:>11}{p50:>9.1f}{p95:>9.1f}{e50:>11.1f}"
                f"{e50 / p50:>10.1f}{np.mean(recalls):>10.3f}"
            )


if __name__ == "__main__":
    main()
