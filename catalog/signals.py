"""Sent explicitly by catalog.services after an annotation is saved, so identification (which depends on
catalog, not the other way round) can prepare embeddings and start matching."""

from django.dispatch import Signal

# kwargs: annotation, created (bool), actor, geometry_changed (box, species, viewpoint or body part changed)
annotation_saved = Signal()
