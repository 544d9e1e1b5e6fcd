"""The demo catalogue the run command loads, so a new instance is populated from the first minute.

Everything goes through the same services as real users' uploads (validation, storage, audit)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.db import transaction

from catalog import services, synthetic
from catalog.models import IdentificationMethod, Individual, LifeStage, Sex, Species, Viewpoint
from resight.models import Membership, Organization, Project, Right, Role, SharingAgreement

DEMO_PASSWORD = "resight-demo"
DEMO_ORG_SLUG = "savanna-carnivore-trust"
EAT = timezone(timedelta(hours=3), "EAT")


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    organization: str
    staff: bool = False


DEMO_USERS = [
    DemoUser("admin", Role.ADMIN, DEMO_ORG_SLUG, staff=True),
    DemoUser("curator", Role.CURATOR, DEMO_ORG_SLUG),
    DemoUser("contributor", Role.CONTRIBUTOR, DEMO_ORG_SLUG),
    DemoUser("viewer", Role.VIEWER, DEMO_ORG_SLUG),
    DemoUser("partner", Role.CURATOR, "lakeside-university"),
]

# (code, name, species key, sex, number of sightings)
DEMO_INDIVIDUALS = [
    ("MARA-L001", "Bahati", "leopard", Sex.FEMALE, 4),
    ("MARA-L002", "Jabari", "leopard", Sex.MALE, 4),
    ("MARA-L003", "Zuri", "leopard", Sex.FEMALE, 3),
    ("MARA-L004", "Imani", "leopard", Sex.MALE, 3),
    ("MARA-C001", "Kasi", "cheetah", Sex.MALE, 3),
    ("MARA-C002", "Neema", "cheetah", Sex.FEMALE, 2),
]
SITES = [
    ("Musiara Marsh", -1.3556, 35.0278),
    ("Rhino Ridge", -1.4102, 35.0871),
    ("Talek River", -1.4567, 35.1985),
]


def demo_loaded() -> bool:
    return Organization.objects.filter(slug=DEMO_ORG_SLUG).exists()


def load_demo(*, photos_per_sighting: int = 2) -> None:
    """Create the demo organisations, users, species, individuals and sightings (once)."""
    if demo_loaded():
        return
    with transaction.atomic():
        trust = Organization.objects.create(name="Savanna Carnivore Trust", slug=DEMO_ORG_SLUG)
        university = Organization.objects.create(name="Lakeside University", slug="lakeside-university")
        orgs = {o.slug: o for o in (trust, university)}
        users = {}
        user_model = get_user_model()
        for demo in DEMO_USERS:
            user = user_model.objects.create_user(
                demo.username, password=DEMO_PASSWORD, is_staff=demo.staff, is_superuser=demo.staff
            )
            Membership.objects.create(user=user, organization=orgs[demo.organization], role=demo.role)
            users[demo.username] = user
        species = {
            "leopard": Species.objects.get_or_create(
                scientific_name="Panthera pardus",
                defaults={
                    "common_name": "Leopard",
                    "id_method": IdentificationMethod.HYBRID,
                    "viewpoints": [Viewpoint.LEFT, Viewpoint.RIGHT],
                    "body_parts": ["flank", "face"],
                    "locations_sensitive": True,
                },
            )[0],
            "cheetah": Species.objects.get_or_create(
                scientific_name="Acinonyx jubatus",
                defaults={
                    "common_name": "Cheetah",
                    "id_method": IdentificationMethod.HYBRID,
                    "viewpoints": [Viewpoint.LEFT, Viewpoint.RIGHT],
                    "body_parts": ["flank"],
                },
            )[0],
        }
        project = Project.objects.create(
            organization=trust,
            name="Mara Big Cats",
            slug="mara-big-cats",
            description="Camera-trap and field photos of leopards and cheetahs, Maasai Mara (demo data).",
            time_zone="Africa/Nairobi",
        )
        SharingAgreement.objects.create(
            project=project, grantee=university, rights=[Right.VIEW, Right.MATCH], created_by=users["admin"]
        )
        curator = users["curator"]
        start = datetime(2026, 3, 2, 6, 15, tzinfo=EAT)
        n = 0
        for i, (code, name, key, sex, n_sightings) in enumerate(DEMO_INDIVIDUALS):
            individual = services.individual_create(
                actor=curator,
                project=project,
                species=species[key],
                code=code,
                name=name,
                sex=sex,
                life_stage=LifeStage.ADULT,
                notes="Demo individual with a synthetic coat pattern.",
            )
            pattern = synthetic.make_pattern(seed=1000 + i)
            for s in range(n_sightings):
                n += 1
                site, lat, lon = SITES[(i + s) % len(SITES)]
                when = start + timedelta(days=9 * s + 2 * i, hours=13 * (n % 3))
                photos = []
                for p in range(photos_per_sighting):
                    shot = synthetic.render(pattern, seed=10_000 * (i + 1) + 100 * s + p)
                    jpeg = synthetic.with_exif(
                        shot.jpeg, taken_at=when + timedelta(seconds=20 * p), lat=lat, lon=lon
                    )
                    photos.append(
                        (shot, services.PhotoUpload(f"{code}-{s + 1}-{p + 1}.jpg", io.BytesIO(jpeg)))
                    )
                sighting = services.sighting_create(
                    actor=curator,
                    project=project,
                    data=services.SightingData(
                        time_zone="Africa/Nairobi",
                        location_name=site,
                        location_uncertainty_m=30,
                        observer="Demo field team",
                    ),
                    photos=[upload for _, upload in photos],
                )
                for asset, (shot, _) in zip(sighting.media_assets.order_by("id"), photos, strict=True):
                    services.annotation_create(
                        actor=curator,
                        media_asset=asset,
                        species=species[key],
                        box=shot.box,
                        viewpoint=shot.facing,
                        body_part="flank",
                        individual=individual,
                        quality=3,
                    )
        assert Individual.objects.filter(project=project).count() == len(DEMO_INDIVIDUALS)
