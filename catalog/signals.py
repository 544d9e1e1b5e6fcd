"""Sent explicitly by catalog.services after an annotation is saved, so identification (which depends on
catalog, not the other way round) can prepare embeddings and start matching."""

from django.dispatch import Signal

# kwargs: annotation, created (bool), actor, geometry_changed (box, species, viewpoint or body part changed),
# match_now (False: a bulk upload matches the annotation with its whole batch), individuals_changed (the ids
# of the individuals the annotation left or joined; empty when its identity did not change)
annotation_saved = Signal()

# Sent by catalog.bulk once every photo of an upload batch has its annotation. kwargs: batch, annotation_ids
batch_imported = Signal()

# Sent (on commit) when a photo is stored. kwargs: media_asset
media_asset_stored = Signal()

# Sent when a species' matching settings (orientation normalisation) change. kwargs: species
matching_settings_changed = Signal()
