"""Embedding spaces, one per embedding model version: vectors of different spaces are never compared. This
module owns their life: the space new embeddings and searches use (created with its index on first use), a
new space for a retrained model, the switch from one space to another (also the rollback), and
re-embedding the catalogue into a space before it is switched to."""

from __future__ import annotations

import threading
from collections.abc import Callable

from celery import current_app as celery_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Annotation, Species
from identification.matching import loaded, search, store
from identification.models import EmbeddingSpace
from ml_service import embedding, weights
from resight import audit
from resight.permissions import AnyUser, require_operator

_space_lock = threading.Lock()
REEMBED_BATCH = 64


def active_space() -> EmbeddingSpace:
    """The space new embeddings and searches use; created (with its index) on first use."""
    space = EmbeddingSpace.objects.filter(is_active=True).first()
    if space is not None:
        return space
    with _space_lock, transaction.atomic():
        space = create(loaded.embedding_model(settings.RESIGHT_EMBEDDING_MODEL))
        if not EmbeddingSpace.objects.filter(is_active=True).exists():
            EmbeddingSpace.objects.filter(pk=space.pk).update(is_active=True)
            space.is_active = True
    return space


def create(model: embedding.EmbeddingModel, **extra: object) -> EmbeddingSpace:
    """The space of `model` (by its version key) with its partial HNSW index; idempotent. `extra`: what
    only a new space records (a fine-tuned model's file, its training run)."""
    space, _ = EmbeddingSpace.objects.get_or_create(
        key=model.key,
        defaults={"model_name": model.name, "version": model.version, "dim": model.dim, **extra},
    )
    search.ensure_index(space)
    return space


def published_models() -> list[str]:
    """The registered models an operator may switch matching to (fine-tuned ones come from training runs)."""
    return sorted(embedding.REGISTRY)


def adopt(name: str, *, actor: AnyUser) -> EmbeddingSpace:
    """An operator switches matching to a published model: its space is created now (the registry shows its
    progress), the catalogue is re-embedded into it in the background by the training worker while matching
    keeps the active space, and the switch happens when every annotation has its vector (`reembed`).
    Raises KeyError for a name that is not registered."""
    require_operator(actor)
    if name not in embedding.REGISTRY:
        raise KeyError(f"Unknown embedding model {name!r}; known: {', '.join(published_models())}")
    model = loaded.embedding_model(name)
    with transaction.atomic():
        space = create(model)
        EmbeddingSpace.objects.filter(pk=space.pk).update(error="")
        audit.record(actor=actor, action="embedding_space.adopt", obj=space, changes={"model": name})
        if not space.is_active:
            transaction.on_commit(
                lambda: celery_app.send_task("identification.tasks.reembed_space", args=[space.pk])
            )
    space.refresh_from_db()
    return space


def reembed_or_record(space_id: int) -> bool:
    """`reembed`, recording why it stopped when the model's weights are not on this machine (a published
    model that downloads, offline): the registry shows the reason; adopting again retries."""
    try:
        return reembed(space_id)
    except weights.WeightsMissing as exc:
        EmbeddingSpace.objects.filter(pk=space_id).update(error=str(exc))
        return False


def reembed(
    space_id: int, *, batches: int | None = None, progress: Callable[[int], None] | None = None
) -> bool:
    """Embed every annotation that has no vector in the space yet, in batches (matching meanwhile uses the
    active space); when none is left, switch to it. Returns whether the switch happened."""
    space = EmbeddingSpace.objects.get(pk=space_id)
    todo = Annotation.objects.exclude(embeddings__space=space).select_related("media_asset", "species")
    EmbeddingSpace.objects.filter(pk=space.pk).update(
        reembed_total=Annotation.objects.count(), reembedded=space.embeddings.count()
    )
    done, finished = 0, False
    while batches is None or done < batches:
        batch = list(todo.order_by("pk")[:REEMBED_BATCH])
        if not batch:
            finished = True
            break
        embedded = store.embed(batch, space, skip_unreadable=True)  # returns what it could embed
        unreadable = [a.pk for a in batch if a.pk not in embedded]
        todo = todo.exclude(pk__in=unreadable)  # a damaged photo cannot be embedded by anyone: skip it
        EmbeddingSpace.objects.filter(pk=space.pk).update(reembedded=space.embeddings.count())
        done += 1
        if progress:
            progress(done)
    if not finished:
        return False
    activate(space, actor=None, reason="re-embedding complete")
    return True


def activate(space: EmbeddingSpace, *, actor: AnyUser | None, reason: str) -> EmbeddingSpace:
    """Make `space` the one matching uses, in one transaction (also the rollback to an older version); the
    fusion calibration of each species is refitted for it afterwards. By the platform itself (no actor: a
    finished re-embedding) or an operator."""
    if actor is not None:
        require_operator(actor)
    with transaction.atomic():
        list(EmbeddingSpace.objects.select_for_update().values_list("pk"))
        previous = EmbeddingSpace.objects.filter(is_active=True).exclude(pk=space.pk).first()
        now = timezone.now()
        # The version it replaces served matching until now: it stays ready for a rollback (jobs embed any
        # annotation it lacks on the way).
        EmbeddingSpace.objects.filter(is_active=True, ready_at__isnull=True).update(ready_at=now)
        EmbeddingSpace.objects.filter(is_active=True).exclude(pk=space.pk).update(is_active=False)
        EmbeddingSpace.objects.filter(pk=space.pk).update(is_active=True, activated_at=now, ready_at=now)
        audit.record(
            actor=actor,
            action="embedding_space.activate",
            obj=space,
            changes={"previous": previous.key if previous else None, "reason": reason},
        )
        transaction.on_commit(_refit_all)
    space.refresh_from_db()
    return space


def _refit_all() -> None:
    # By name, through the routes: the tasks module imports this one.
    for species_id in Species.objects.values_list("pk", flat=True):
        celery_app.send_task("identification.tasks.refit_calibration", args=[species_id])
