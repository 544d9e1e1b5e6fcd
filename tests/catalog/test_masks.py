"""Masks computed by two workers at once for one annotation: the first file is kept, none is orphaned."""

from __future__ import annotations

from pathlib import Path

from catalog import services
from catalog.models import Annotation
from tests.conftest import World


def test_two_workers_storing_a_mask_at_once_leave_one_file(
    world: World, media_root: Path, django_capture_on_commit_callbacks
) -> None:
    # Each worker holds its own copy of the annotation, read before either stored a mask.
    first, second = (
        Annotation.objects.get(pk=world.annotation.pk),
        Annotation.objects.get(pk=world.annotation.pk),
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.annotation_set_mask(annotation=first, png=b"\x89PNG first", source="grabcut@1")
        # A third worker reads the row now, and opens the mask it names after the second has stored its own.
        reader = Annotation.objects.get(pk=world.annotation.pk)
        services.annotation_set_mask(annotation=second, png=b"\x89PNG second", source="grabcut@1")

    stored = Annotation.objects.get(pk=world.annotation.pk).mask
    assert stored.read() == b"\x89PNG first"  # the first stored is kept: its name may be read already
    assert reader.mask.read() == b"\x89PNG first"
    assert second.mask.name == stored.name  # the loser's copy of the row names the kept file
    assert [p.name for p in (media_root / "masks").iterdir()] == [Path(str(stored.name)).name]


def test_a_mask_for_an_annotation_deleted_meanwhile_is_not_kept(world: World, media_root: Path) -> None:
    stale = Annotation.objects.get(pk=world.annotation.pk)
    Annotation.objects.filter(pk=stale.pk).delete()
    services.annotation_set_mask(annotation=stale, png=b"\x89PNG", source="grabcut@1")
    assert list((media_root / "masks").iterdir()) == []


def test_a_mask_for_a_box_redrawn_meanwhile_is_not_kept(world: World, media_root: Path) -> None:
    stale = Annotation.objects.get(pk=world.annotation.pk)  # the worker's copy, read before the redraw
    Annotation.objects.filter(pk=stale.pk).update(width=stale.width - 10)
    services.annotation_set_mask(annotation=stale, png=b"\x89PNG", source="grabcut@1")
    assert not Annotation.objects.get(pk=stale.pk).mask
    assert list((media_root / "masks").iterdir()) == []
