from django.apps import AppConfig


class IdentificationConfig(AppConfig):
    name = "identification"
