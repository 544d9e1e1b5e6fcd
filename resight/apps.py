from django.apps import AppConfig


class ResightConfig(AppConfig):
    name = "resight"
    verbose_name = "Platform"
