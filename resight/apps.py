from django.apps import AppConfig


class ResightConfig(AppConfig):
    name = "resight"
    verbose_name = "Platform"

    def ready(self) -> None:
        from resight.sign_in import connect_signals

        connect_signals()
