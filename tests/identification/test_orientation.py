"""Orientation normalisation: a species with a canonical side has the other side mirrored onto it, in the
crop that is embedded and matched and in the viewpoint it is searched with."""

from __future__ import annotations

import numpy as np
from PIL import ImageOps

from catalog import services as catalog_services
from catalog.models import Annotation
from identification.matching import crops
from tests.conftest import Catalogue, add_photo


def test_the_opposite_side_is_mirrored_and_searched_as_the_canonical_one(
    catalogue: Catalogue, settings
) -> None:
    settings.RESIGHT_MASK_REFINER = ""
    world = catalogue.world
    right = Annotation.objects.filter(species=world.leopard, viewpoint="right").first() or add_photo(
        world, 5, 3
    )
    right.viewpoint = "right"
    plain = crops.crop_of(right)
    assert crops.matching_viewpoint(right) == ("right", False)

    staff = world.users["admin"]
    staff.is_staff = True
    catalog_services.species_update(
        actor=staff, species=world.leopard, changes={"canonical_viewpoint": "left"}
    )
    right.species.refresh_from_db()
    assert crops.matching_viewpoint(right) == ("left", True)
    mirrored = crops.crop_of(right)
    assert np.array_equal(np.asarray(mirrored.image), np.asarray(ImageOps.mirror(plain.image)))
    left = Annotation.objects.filter(species=world.leopard, viewpoint="left").first()
    assert left is not None and crops.matching_viewpoint(left) == ("left", False)
