"""kNN search in pgvector: one partial HNSW index per embedding space, filtered by what the requester may
match against.

Filters are applied inside the index scan with `hnsw.iterative_scan = strict_order`, so a selective filter
(one species among many, one project) keeps scanning the graph until `k` rows pass instead of silently
returning a short list (pgvector >= 0.8). `tests/identification/test_search.py` checks the result against an
exact sequential scan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from pgvector import HalfVector

from catalog.selectors import BLUR_DEGREES
from identification.models import AnnotationEmbedding, EmbeddingSpace

# Measured (benchmarks/knn.py, 1280-d, one species of three and one project of four; catalogue-like vectors):
# at 1M, recall@20 0.84 at ef 64 (11.6 ms p50), 0.90 at ef 200 (18.4 ms), 0.94 at ef 400 (22.5 ms) against an
# exact scan of 336 ms; at 100k the planner already prefers the exact scan (~35 ms) from ef 200. Correct
# shortlists first: a few milliseconds buy the last points of recall.
EF_SEARCH_MIN = 400
MAX_SCAN_TUPLES = 50_000  # upper bound on tuples an iterative scan visits (pgvector default 20,000)


@dataclass(frozen=True)
class Neighbour:
    annotation_id: int
    individual_id: int
    cosine: float


@dataclass(frozen=True)
class SearchFilter:
    species_id: int
    project_ids: tuple[int, ...]
    exclude_annotation_ids: tuple[int, ...] = ()
    viewpoint: str | None = None
    body_part: str | None = None
    near: tuple[float, float, float] | None = None  # latitude, longitude, radius in km
    # SQL (with its parameters) selecting the sightings whose place the requester may know only blurred:
    # the radius is measured from their blurred point, so probing tiny radii reveals nothing more.
    blurred_sightings: tuple[str, tuple[Any, ...]] | None = None
    observed_between: tuple[dt.datetime, dt.datetime] | None = None


def as_array(value: object) -> np.ndarray:
    """A stored vector as float32: pgvector's field gives a HalfVector, or through values_list (or a
    connection with pgvector's psycopg types registered) a plain list or array."""
    to_list = getattr(value, "to_list", None)
    return np.asarray(to_list() if to_list is not None else value, dtype=np.float32)


def index_name(space: EmbeddingSpace) -> str:
    return f"ident_emb_hnsw_space_{space.pk}"


def ensure_index(space: EmbeddingSpace) -> None:
    """The space's partial HNSW index (idempotent). `halfvec` indexes up to 4,000 dimensions."""
    table = AnnotationEmbedding._meta.db_table
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of rows written earlier in this transaction would block CREATE INDEX.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(space)} ON {table} "
            f"USING hnsw ((vector::halfvec({int(space.dim)})) halfvec_cosine_ops) "
            f"WHERE space_id = {int(space.pk)}"
        )


def store(space: EmbeddingSpace, rows: list[tuple[int, np.ndarray, dict[str, object]]]) -> None:
    """Upsert (annotation id, vector, filter columns) rows in one statement: re-embedding replaces, never
    duplicates (INSERT ... ON CONFLICT on the (annotation, space) constraint)."""
    AnnotationEmbedding.objects.bulk_create(
        [
            AnnotationEmbedding(
                annotation_id=annotation_id,
                space=space,
                vector=HalfVector(vector.astype(np.float32)),
                **columns,
            )
            for annotation_id, vector, columns in rows
        ],
        update_conflicts=True,
        unique_fields=["annotation", "space"],
        update_fields=["vector", "project_id", "species_id", "viewpoint", "body_part"],
    )


def nearest(
    space: EmbeddingSpace,
    vector: np.ndarray,
    flt: SearchFilter,
    k: int,
    *,
    exact: bool = False,
    ef_search: int | None = None,
) -> list[Neighbour]:
    """The `k` identified annotations closest to `vector` under `flt`, closest first."""
    if not flt.project_ids:
        return []
    dim = int(space.dim)
    scope = _scope(space, flt)
    filters = _filters(flt)
    where = [scope.sql, *(f.sql for f in filters)]
    params = [*scope.params, *(p for f in filters for p in f.params)]
    sql = (
        f"SELECT e.annotation_id, a.individual_id, "
        f"(e.vector::halfvec({dim})) <=> %s::halfvec({dim}) AS distance "
        f"FROM {_FROM} {_point(flt).sql}WHERE {' AND '.join(where)} ORDER BY distance LIMIT %s"
    )
    query = HalfVector(vector.astype(np.float32)).to_text()  # text, cast to halfvec in SQL
    with transaction.atomic(), connection.cursor() as cursor:
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        else:
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search or max(EF_SEARCH_MIN, 2 * k))}")
            cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}")
        cursor.execute(sql, [query, *_point(flt).params, *params, k])
        rows = cursor.fetchall()
    return [Neighbour(int(a), int(i), 1.0 - float(d)) for a, i, d in rows]


# --- the filters, named: the search uses them all, the census counts what each leaves out ---------------

_FROM = (
    f"{AnnotationEmbedding._meta.db_table} e JOIN catalog_annotation a ON a.id = e.annotation_id "
    "JOIN catalog_sighting s ON s.id = a.sighting_id"
)


@dataclass(frozen=True)
class Condition:
    name: str
    sql: str
    params: tuple[Any, ...] = ()


def _scope(space: EmbeddingSpace, flt: SearchFilter) -> Condition:
    """The catalogue a search may compare with at all: identified annotations of the species in the space,
    in the projects searched, not of the query's own encounter."""
    sql = "e.space_id = %s AND e.species_id = %s AND e.project_id = ANY(%s) AND a.individual_id IS NOT NULL"
    params: tuple[Any, ...] = (space.pk, flt.species_id, list(flt.project_ids))
    if flt.exclude_annotation_ids:
        sql += " AND NOT (e.annotation_id = ANY(%s))"
        params += (list(flt.exclude_annotation_ids),)
    return Condition("catalogue", sql, params)


def _filters(flt: SearchFilter) -> list[Condition]:
    """The job's filters. Unknown is no answer: a catalogue photo of unknown viewpoint or body part is never
    left out by a query that has one."""
    conditions = []
    if flt.viewpoint:
        conditions.append(Condition("viewpoint", "e.viewpoint IN (%s, 'unknown')", (flt.viewpoint,)))
    if flt.body_part:
        conditions.append(Condition("body_part", "e.body_part IN (%s, '')", (flt.body_part,)))
    if flt.near is not None:
        lat, lon, radius_km = flt.near
        # Haversine on the sighting's point (see _point); sightings without a point are outside any radius.
        conditions.append(
            Condition(
                "radius",
                "p.lat IS NOT NULL AND 2 * 6371.0 * asin(sqrt("
                "power(sin(radians(p.lat - %s) / 2), 2) + cos(radians(%s)) * cos(radians(p.lat)) "
                "* power(sin(radians(p.lon - %s) / 2), 2))) <= %s",
                (lat, lat, lon, radius_km),
            )
        )
    if flt.observed_between is not None:
        conditions.append(Condition("days", "s.observed_at BETWEEN %s AND %s", tuple(flt.observed_between)))
    return conditions


def _point(flt: SearchFilter) -> Condition:
    """A lateral join giving each row the point its radius is measured from: blurred where the requester
    may only know it blurred."""
    if flt.near is None:
        return Condition("point", "")
    blurred_sql, blurred_params = flt.blurred_sightings or ("SELECT NULL::bigint WHERE false", ())
    return Condition(
        "point",
        "CROSS JOIN LATERAL (SELECT CASE WHEN b.blurred THEN round(s.latitude / %s) * %s "
        "ELSE s.latitude END AS lat, CASE WHEN b.blurred THEN round(s.longitude / %s) * %s "
        f"ELSE s.longitude END AS lon FROM (SELECT s.id IN ({blurred_sql}) AS blurred) b) p ",
        (BLUR_DEGREES,) * 4 + tuple(blurred_params),
    )


@dataclass(frozen=True)
class Census:
    """What a search had to compare with: the catalogue in scope (photos and individuals), what each
    filter alone left out of it, and what all filters together kept."""

    photos: int
    individuals: int
    left_out: dict[str, int]
    searched: int
    searched_individuals: int

    def as_json(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "individuals": self.individuals,
            "left_out": self.left_out,
            "searched": self.searched,
            "searched_individuals": self.searched_individuals,
        }


def census(space: EmbeddingSpace, flt: SearchFilter) -> Census:
    """Count, in one statement, the catalogue in scope and what each of the filters leaves out of it."""
    if not flt.project_ids:
        return Census(0, 0, {}, 0, 0)
    scope, filters, point = _scope(space, flt), _filters(flt), _point(flt)
    kept = " AND ".join(f"COALESCE(({f.sql}), false)" for f in filters) or "true"
    columns = [
        "count(*)",
        "count(DISTINCT a.individual_id)",
        *(f"count(*) FILTER (WHERE NOT COALESCE(({f.sql}), false))" for f in filters),
        f"count(*) FILTER (WHERE {kept})",
        f"count(DISTINCT a.individual_id) FILTER (WHERE {kept})",
    ]
    params = [
        *(p for f in filters for p in f.params),  # the left-out columns
        *(p for f in filters for p in f.params),  # kept
        *(p for f in filters for p in f.params),  # kept individuals
    ]
    sql = f"SELECT {', '.join(columns)} FROM {_FROM} {point.sql}WHERE {scope.sql}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *point.params, *scope.params])
        row = cursor.fetchone()
    photos, individuals, *rest = row
    left_out = {f.name: int(n) for f, n in zip(filters, rest[: len(filters)], strict=True)}
    return Census(int(photos), int(individuals), left_out, int(rest[-2]), int(rest[-1]))
