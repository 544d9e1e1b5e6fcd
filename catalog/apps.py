from django.apps import AppConfig
from django.conf import settings


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        from catalog import images

        images.set_pixel_limit(settings.RESIGHT_MAX_IMAGE_PIXELS)
