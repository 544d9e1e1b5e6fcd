from django.core.management.base import BaseCommand

from catalog import demo


class Command(BaseCommand):
    help = "Load the demo organisations, users and synthetic sightings (does nothing if already loaded)."

    def handle(self, *args: object, **options: object) -> None:
        if demo.demo_loaded():
            self.stdout.write("Demo data already loaded.")
            return
        demo.load_demo()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
