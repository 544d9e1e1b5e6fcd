"""Merging and splitting individuals: previews, the append-only log, exact undo, and concurrency."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from catalog import services as catalog_services
from catalog.models import Annotation, Individual, IndividualStatus
from identification.curation import identities
from identification.curation import selectors as curation_selectors
from identification.models import IdentityChange
from resight.models import AuditEvent
from tests.conftest import Catalogue, add_photo


def snapshot() -> tuple[dict[int, int | None], dict[int, tuple[str, int | None]], int]:
    """Every annotation's individual, every individual's status and merge link, and the active count."""
    annotations: dict[int, int | None] = dict(Annotation.objects.values_list("pk", "individual_id"))
    individuals = {i.pk: (i.status, i.merged_into_id) for i in Individual.objects.all()}
    active = Individual.objects.exclude(status=IndividualStatus.MERGED).count()
    return annotations, individuals, active


def test_merge_then_undo_restores_the_exact_prior_state(catalogue: Catalogue) -> None:
    curator = catalogue.world.users["curator"]
    a, b = catalogue.individuals[:2]
    before = snapshot()
    moving = set(Annotation.objects.filter(individual=a).values_list("pk", flat=True))

    change = identities.individual_merge(actor=curator, source=a, target=b)

    a.refresh_from_db()
    assert (a.status, a.merged_into_id) == (IndividualStatus.MERGED, b.pk)
    assert not Annotation.objects.filter(individual=a).exists()
    assert set(change.annotation_ids) == moving
    assert Annotation.objects.filter(individual=b).count() == 6
    assert change.preview["moving_annotations"] == 3
    assert AuditEvent.objects.filter(action="individual.merge", object_id=str(a.pk)).exists()

    undo = identities.identity_change_undo(actor=curator, change=change)
    assert undo.undoes_id == change.pk
    assert snapshot() == before
    assert AuditEvent.objects.filter(action="individual.undo").exists()
    with pytest.raises(ValidationError, match="already undone"):
        identities.identity_change_undo(actor=curator, change=change)


def test_split_then_undo_puts_every_photo_back(catalogue: Catalogue) -> None:
    curator = catalogue.world.users["curator"]
    a = catalogue.individuals[0]
    ids = list(Annotation.objects.filter(individual=a).order_by("pk").values_list("pk", flat=True))
    before_annotations = snapshot()[0]

    preview = curation_selectors.split_preview(a, ids[:1])
    assert (preview.moving_annotations, preview.remaining_annotations) == (1, 2)
    change = identities.individual_split(
        actor=curator, individual=a, annotation_ids=ids[:1], new_code="CAT-NEW"
    )
    new = Individual.objects.get(code="CAT-NEW")
    assert (new.species_id, new.project_id) == (a.species_id, a.project_id)
    assert list(Annotation.objects.filter(individual=new).values_list("pk", flat=True)) == ids[:1]

    identities.identity_change_undo(actor=curator, change=change)
    assert snapshot()[0] == before_annotations
    new.refresh_from_db()
    assert (new.status, new.merged_into_id) == (IndividualStatus.MERGED, a.pk)  # retired, history kept


def test_impossible_merges_and_splits_are_refused_with_reasons(catalogue: Catalogue) -> None:
    world, curator = catalogue.world, catalogue.world.users["curator"]
    a, b = catalogue.individuals[:2]
    with pytest.raises(ValidationError, match="into itself"):
        identities.individual_merge(actor=curator, source=a, target=a)
    with pytest.raises(ValidationError, match="one species"):
        identities.individual_merge(actor=curator, source=a, target=world.zebra_individual)
    ids = list(Annotation.objects.filter(individual=a).values_list("pk", flat=True))
    with pytest.raises(ValidationError, match="rename"):
        identities.individual_split(actor=curator, individual=a, annotation_ids=ids)
    with pytest.raises(ValidationError, match="Choose photos"):
        identities.individual_split(actor=curator, individual=a, annotation_ids=[world.annotation.pk])
    identities.individual_merge(actor=curator, source=a, target=b)
    with pytest.raises(ValidationError, match="already merged"):
        identities.individual_merge(actor=curator, source=a, target=catalogue.individuals[2])
    # A photo can no longer be assigned to the merged individual.
    stray = add_photo(world, 7, seed=7)
    with pytest.raises(ValidationError, match="merged into"):
        catalog_services.annotation_update(actor=curator, annotation=stray, changes={"individual": a})
    with pytest.raises(PermissionDenied):  # viewers may not merge
        identities.individual_merge(actor=world.users["viewer"], source=b, target=catalogue.individuals[2])


def test_preview_warns_about_animals_side_by_side_and_conflicting_sex(catalogue: Catalogue) -> None:
    curator = catalogue.world.users["curator"]
    a, b = catalogue.individuals[:2]
    photo = Annotation.objects.filter(individual=a).first()
    assert photo is not None
    catalog_services.annotation_create(
        actor=curator,
        media_asset=photo.media_asset,
        species=a.species,
        box=(0, 0, 50, 50),
        viewpoint="left",
        individual=b,
    )
    catalog_services.individual_update(actor=curator, individual=a, changes={"sex": "female"})
    catalog_services.individual_update(actor=curator, individual=b, changes={"sex": "male"})
    warnings = curation_selectors.merge_preview(a, b).warnings
    assert any("side by side in 1 photo" in w for w in warnings)
    assert any("female" in w and "male" in w for w in warnings)


def test_undo_is_refused_once_a_later_change_moved_the_photos(catalogue: Catalogue) -> None:
    curator = catalogue.world.users["curator"]
    a, b, c = catalogue.individuals[:3]
    first = identities.individual_merge(actor=curator, source=a, target=b)
    second = identities.individual_merge(actor=curator, source=b, target=c)
    with pytest.raises(ValidationError, match="undo that first"):
        identities.identity_change_undo(actor=curator, change=first)
    identities.identity_change_undo(actor=curator, change=second)
    identities.identity_change_undo(actor=curator, change=first)
    assert Annotation.objects.filter(individual=a).count() == 3


def test_the_log_is_append_only(catalogue: Catalogue) -> None:
    a, b = catalogue.individuals[:2]
    change = identities.individual_merge(actor=catalogue.world.users["curator"], source=a, target=b)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        IdentityChange.objects.filter(pk=change.pk).update(annotation_ids=[])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        IdentityChange.objects.filter(pk=change.pk).delete()


@pytest.mark.django_db(transaction=True)
def test_concurrent_merges_never_lose_or_duplicate_an_annotation(catalogue: Catalogue) -> None:
    curator = catalogue.world.users["curator"]
    a, b, c, d = catalogue.individuals
    identified_before = set(Annotation.objects.filter(individual__isnull=False).values_list("pk", flat=True))
    # Chains and opposite directions at the same instant: A->B, B->C, C->B, D->C.
    pairs = [(a, b), (b, c), (c, b), (d, c)]
    barrier = threading.Barrier(len(pairs))
    outcomes: list[str] = []

    def work(source: Individual, target: Individual) -> None:
        try:
            barrier.wait()
            identities.individual_merge(actor=curator, source=source, target=target)
            outcomes.append("merged")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4 and "merged" in outcomes
    identified_after = set(Annotation.objects.filter(individual__isnull=False).values_list("pk", flat=True))
    assert identified_after == identified_before  # none lost
    merged = Individual.objects.filter(status=IndividualStatus.MERGED)
    assert not Annotation.objects.filter(individual__in=merged).exists()  # none stranded on a merged one
    # Every annotation moved by a merge in force is recorded exactly once per merge that moved it.
    for change in IdentityChange.objects.all():
        assert len(change.annotation_ids) == len(set(change.annotation_ids))


def test_merge_and_split_pages(catalogue: Catalogue) -> None:
    world = catalogue.world
    a, b = catalogue.individuals[:2]
    client = Client()
    client.force_login(world.users["curator"])
    preview = client.get(f"/individuals/{a.pk}/merge/", {"target": b.pk}).content.decode()
    assert "What will happen" in preview and "3 photo annotations" in preview
    response = client.post(f"/individuals/{a.pk}/merge/", {"target": b.pk})
    assert response.status_code == 302 and response["Location"].startswith(f"/individuals/{b.pk}/")
    history = client.get(f"/individuals/{b.pk}/identity-changes/").content.decode()
    assert "merged into" in history and "Undo" in history
    merged_page = client.get(f"/individuals/{a.pk}/").content.decode()
    assert "Merged into" in merged_page
    change = IdentityChange.objects.get()
    assert client.post(f"/identity-changes/{change.pk}/undo/").status_code == 302
    assert Annotation.objects.filter(individual=a).count() == 3

    ids = list(Annotation.objects.filter(individual=a).values_list("pk", flat=True))
    page = client.post(f"/individuals/{a.pk}/split/", {"annotations": ids[:2]}).content.decode()
    assert "What will happen" in page and "keeps 1" in page
    done = client.post(f"/individuals/{a.pk}/split/", {"annotations": ids[:2], "confirm": "1"})
    assert done.status_code == 302
    assert Annotation.objects.filter(individual=a).count() == 1

    viewer = Client()
    viewer.force_login(world.users["viewer"])
    assert viewer.get(f"/individuals/{b.pk}/merge/").status_code == 403
    assert "Undo" not in viewer.get(f"/individuals/{b.pk}/identity-changes/").content.decode()


def test_merge_split_and_undo_through_the_api(catalogue: Catalogue, api_client_for) -> None:
    a, b = catalogue.individuals[:2]
    client = api_client_for(catalogue.world.users["curator"])
    preview = client.post(
        "/api/identity-changes/",
        {"kind": "merge", "individual": a.pk, "target": b.pk, "dry_run": True},
        format="json",
    )
    assert preview.status_code == 200 and preview.json()["moving_annotations"] == 3
    assert not IdentityChange.objects.exists()
    merged = client.post(
        "/api/identity-changes/", {"kind": "merge", "individual": a.pk, "target": b.pk}, format="json"
    )
    assert merged.status_code == 201 and len(merged.json()["annotation_ids"]) == 3
    undo = client.post(f"/api/identity-changes/{merged.json()['id']}/undo/")
    assert undo.status_code == 201 and undo.json()["kind"] == "undo"
    assert Annotation.objects.filter(individual=a).count() == 3
    ids = list(Annotation.objects.filter(individual=a).values_list("pk", flat=True))[:1]
    split = client.post(
        "/api/identity-changes/",
        {"kind": "split", "individual": a.pk, "annotations": ids, "new_code": "API-1"},
        format="json",
    )
    assert split.status_code == 201 and Individual.objects.get(code="API-1").annotations.count() == 1
    refused = client.post(
        "/api/identity-changes/", {"kind": "merge", "individual": a.pk, "target": a.pk}, format="json"
    )
    assert refused.status_code == 400 and "itself" in str(refused.json())
    viewer = api_client_for(catalogue.world.users["viewer"])
    assert (
        viewer.post(
            "/api/identity-changes/", {"kind": "merge", "individual": a.pk, "target": b.pk}, format="json"
        ).status_code
        == 403
    )
    assert viewer.get("/api/identity-changes/").json()["count"] == 3
