from django.apps import AppConfig


class IdentificationConfig(AppConfig):
    name = "identification"

    def ready(self) -> None:
        from identification import receivers

        receivers.connect()
