from django.apps import AppConfig


class IdentificationConfig(AppConfig):
    name = "identification"

    def ready(self) -> None:
        from catalog.signals import annotation_saved
        from identification.services import on_annotation_saved

        annotation_saved.connect(on_annotation_saved, dispatch_uid="identification.on_annotation_saved")
