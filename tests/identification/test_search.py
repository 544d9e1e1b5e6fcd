"""Filtered HNSW search returns what an exact scan returns: no silent short lists, no version mixing."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection, transaction
from pgvector import HalfVector

from catalog.models import Annotation, Individual, Species
from identification.matching import search
from identification.models import AnnotationEmbedding, EmbeddingSpace
from tests.conftest import World

N = 4000
DIM = 16


@pytest.fixture
def indexed(world: World):
    rng = np.random.default_rng(7)
    rare = Species.objects.create(common_name="Rare cat", scientific_name="Felis rara")
    species = [world.leopard.pk, world.zebra.pk, rare.pk]
    species_of = rng.choice(3, size=N, p=[0.6, 0.392, 0.008])  # the rare species: ~32 rows
    individuals = {
        s: Individual.objects.create(project=world.project, species_id=s, code=f"IND-{s}") for s in species
    }
    annotations = Annotation.objects.bulk_create(
        [
            Annotation(
                media_asset=world.asset,
                sighting=world.sighting,
                species_id=species[k],
                x=0,
                y=0,
                width=10,
                height=10,
                viewpoint="left" if i % 2 else "right",
                individual=individuals[species[k]],
            )
            for i, k in enumerate(species_of)
        ]
    )
    space = EmbeddingSpace.objects.create(key="test@16", model_name="test", version="16", dim=DIM)
    other_space = EmbeddingSpace.objects.create(key="other@16", model_name="other", version="16", dim=DIM)
    projects = [world.project.pk, world.other_project.pk]
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    rows = []
    for i, (a, v) in enumerate(zip(annotations, vectors, strict=True)):
        common = {
            "annotation": a,
            "vector": HalfVector(v),
            "project_id": projects[i % 5 == 0],
            "species_id": a.species_id,
            "viewpoint": a.viewpoint,
            "body_part": "",
        }
        rows.append(AnnotationEmbedding(space=space, **common))
        rows.append(AnnotationEmbedding(space=other_space, **common | {"vector": HalfVector(-v)}))
    AnnotationEmbedding.objects.bulk_create(rows)
    search.ensure_index(space)
    search.ensure_index(other_space)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AnnotationEmbedding._meta.db_table}")
    return space, other_space, species, rng


FILTERS = {
    "common species, one project": lambda sp: search.SearchFilter(species_id=sp[0], project_ids=(0,)),
    "rare species (<1%)": lambda sp: search.SearchFilter(species_id=sp[2], project_ids=(0, 1)),
    "species + viewpoint": lambda sp: search.SearchFilter(
        species_id=sp[1], project_ids=(0, 1), viewpoint="left"
    ),
}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_filtered_index_search_equals_exact_scan(world: World, indexed, name: str) -> None:
    space, _, species, rng = indexed
    projects = [world.project.pk, world.other_project.pk]
    base = FILTERS[name](species)
    flt = search.SearchFilter(
        species_id=base.species_id,
        viewpoint=base.viewpoint,
        project_ids=tuple(projects[i] for i in base.project_ids),
    )
    expected_available = AnnotationEmbedding.objects.filter(
        space=space,
        species_id=flt.species_id,
        project_id__in=flt.project_ids,
        **({"viewpoint": flt.viewpoint} if flt.viewpoint else {}),
    ).count()
    for _ in range(5):
        query = rng.normal(size=DIM).astype(np.float32)
        approximate = search.nearest(space, query, flt, k=20)
        exact = search.nearest(space, query, flt, k=20, exact=True)
        assert len(approximate) == min(20, expected_available)  # never a silent short list
        assert [n.annotation_id for n in approximate] == [n.annotation_id for n in exact]


def test_the_index_is_used_and_spaces_never_mix(world: World, indexed) -> None:
    space, other_space, species, rng = indexed
    query = rng.normal(size=DIM).astype(np.float32)
    flt = search.SearchFilter(species_id=species[0], project_ids=(world.project.pk,))
    mine = search.nearest(space, query, flt, k=10)
    theirs = search.nearest(other_space, query, flt, k=10)
    assert {n.annotation_id for n in mine}.isdisjoint({n.annotation_id for n in theirs})  # -v is far from v
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        cursor.execute("SET LOCAL enable_seqscan = off")
        # On a few thousand rows the planner may fairly prefer the btree on space_id plus a sort; what must
        # hold is that the HNSW index fits this query's expression, so rule the sort out.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            "EXPLAIN SELECT annotation_id FROM identification_annotationembedding "
            f"WHERE space_id = {space.pk} "
            f"ORDER BY (vector::halfvec({DIM})) <=> '{HalfVector(query).to_text()}'::halfvec({DIM}) LIMIT 10"
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert search.index_name(space) in plan


def test_storing_again_replaces_the_vector(world: World) -> None:
    space = EmbeddingSpace.objects.create(key="upsert@4", model_name="upsert", version="4", dim=4)
    columns = {
        "project_id": world.project.pk,
        "species_id": world.leopard.pk,
        "viewpoint": "left",
        "body_part": "flank",
    }
    search.store(space, [(world.annotation.pk, np.array([1, 0, 0, 0], np.float32), columns)])
    search.store(
        space, [(world.annotation.pk, np.array([0, 1, 0, 0], np.float32), columns | {"viewpoint": "right"})]
    )
    (row,) = AnnotationEmbedding.objects.filter(space=space)
    assert list(row.vector) == [0.0, 1.0, 0.0, 0.0] and row.viewpoint == "right"
