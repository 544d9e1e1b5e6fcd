"""Stored local features under concurrent work. A new demo or bulk photo is a gallery member at once, so a
match job may store its features while the bulk worker prepares the same annotation: preparing keeps them.
A redo (new box, new matching settings) replaces them, and a reader whose file went meanwhile extracts the
features again instead of failing its search (found by a cluster run: FileNotFoundError, a failed job)."""

from __future__ import annotations

import numpy as np
from django.core.files.storage import default_storage

from catalog.models import Annotation
from identification import tasks
from identification.matching import loaded, store
from identification.models import LocalFeatureSet
from tests.conftest import Catalogue


def gallery_member(catalogue: Catalogue) -> Annotation:
    annotation = Annotation.objects.filter(individual=catalogue.individuals[0]).order_by("pk").first()
    assert annotation is not None
    return annotation


def stored_rows(annotation: Annotation) -> list[tuple[int, str]]:
    return list(LocalFeatureSet.objects.filter(annotation=annotation).values_list("pk", "file"))


def test_preparing_an_annotation_keeps_the_features_a_match_job_stored(
    catalogue: Catalogue, settings
) -> None:
    annotation = gallery_member(catalogue)
    matcher = loaded.local_matcher(settings.RESIGHT_LOCAL_MATCHER)
    store.local_features_of(annotation, matcher)  # a match job, with this annotation among its neighbours
    before = stored_rows(annotation)
    tasks.prepare_annotation(annotation.pk)  # the bulk worker's task for the same new annotation
    assert stored_rows(annotation) == before
    assert default_storage.exists(before[0][1])
    assert annotation.embeddings.exists()


def test_a_redo_replaces_the_features_and_a_reader_of_a_gone_file_extracts_them_again(
    catalogue: Catalogue, settings
) -> None:
    annotation = gallery_member(catalogue)
    matcher = loaded.local_matcher(settings.RESIGHT_LOCAL_MATCHER)
    first = store.local_features_of(annotation, matcher)
    ((old_pk, _),) = stored_rows(annotation)

    tasks.prepare_annotation(annotation.pk, redo=True)
    ((pk, name),) = stored_rows(annotation)
    assert pk != old_pk and default_storage.exists(name)

    # The row a reader found names a file another worker has just forgotten.
    default_storage.delete(name)
    again = store.local_features_of(annotation, matcher)
    assert np.array_equal(again.keypoints, first.keypoints)
    assert np.array_equal(again.descriptors, first.descriptors)
    ((fresh_pk, fresh_name),) = stored_rows(annotation)
    assert fresh_pk != pk and default_storage.exists(fresh_name)
    assert store.local_features_of(annotation, matcher).keypoints.shape == first.keypoints.shape
