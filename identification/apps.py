from django.apps import AppConfig


class IdentificationConfig(AppConfig):
    name = "identification"

    def ready(self) -> None:
        from catalog.signals import (
            annotation_saved,
            batch_imported,
            matching_settings_changed,
            media_asset_stored,
        )
        from identification.services import (
            on_annotation_saved,
            on_batch_imported,
            on_matching_settings_changed,
            on_media_asset_stored,
        )

        annotation_saved.connect(on_annotation_saved, dispatch_uid="identification.on_annotation_saved")
        batch_imported.connect(on_batch_imported, dispatch_uid="identification.on_batch_imported")
        matching_settings_changed.connect(
            on_matching_settings_changed, dispatch_uid="identification.on_matching_settings_changed"
        )
        media_asset_stored.connect(on_media_asset_stored, dispatch_uid="identification.on_media_asset_stored")
