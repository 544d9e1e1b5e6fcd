"""A small catalogue of identified spotted animals, uploaded through the real services."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from catalog import services, synthetic
from catalog.models import Annotation, Individual, Species
from resight.models import Project
from tests.conftest import World, upload


@dataclass
class Catalogue:
    world: World
    individuals: list[Individual]
    species: Species
    project: Project


def add_photo(
    world: World,
    individual_index: int,
    seed: int,
    *,
    individual: Individual | None = None,
    day: int = 0,
    actor: str = "curator",
) -> Annotation:
    shot = synthetic.render(synthetic.make_pattern(500 + individual_index), seed=seed, size=(640, 480))
    sighting = services.sighting_create(
        actor=world.users[actor],
        project=world.project,
        data=services.SightingData(
            observed_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day),
            latitude=-1.0 - 0.01 * individual_index,
            longitude=35.0,
        ),
        photos=[upload(f"i{individual_index}-{seed}.jpg", shot.jpeg)],
    )
    return services.annotation_create(
        actor=world.users[actor],
        media_asset=sighting.media_assets.get(),
        species=world.leopard,
        box=shot.box,
        viewpoint="left" if shot.facing == "left" else "right",
        body_part="flank",
        individual=individual,
    )


@pytest.fixture
def catalogue(world: World) -> Catalogue:
    individuals = []
    for i in range(4):
        individual = services.individual_create(
            actor=world.users["curator"], project=world.project, species=world.leopard, code=f"CAT-{i}"
        )
        for s in range(3):
            add_photo(world, i, seed=1000 * i + s, individual=individual, day=10 * s + i)
        individuals.append(individual)
    return Catalogue(world, individuals, world.leopard, world.project)


__all__ = ["Catalogue", "add_photo", "io"]
