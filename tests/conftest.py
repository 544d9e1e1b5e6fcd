"""Shared fixtures: a small real world (organisations, roles, sharing, photos) on the embedded PostgreSQL."""

from __future__ import annotations

import io
import os
import string
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache
from django.middleware import csrf
from rest_framework.test import APIClient

from catalog import services, synthetic
from catalog.models import Annotation, Individual, MediaAsset, Sighting, Species, Viewpoint
from resight.models import Membership, Organization, Project, Right, Role, SharingAgreement

PASSWORD = "test-password-123"
# Models built straight from ml_service in tests export their ONNX networks where the platform's go (the
# state folder), never into the user's ~/.cache.
os.environ.setdefault("RESIGHT_ONNX_CACHE", str(django_settings.RESIGHT_ONNX_CACHE))
# Every page embeds random CSRF tokens (a header for HTMX, one per form): 64 letters and digits that spell
# "L1" or "cdn" now and then, so an assertion that a code or word is (not) on a page failed or passed by
# chance (issue 16). In tests the tokens are random digits only, still random per session and still checked
# by Django's middleware (which reads the alphabet from this module variable for masking and unmasking).
csrf.CSRF_ALLOWED_CHARS = string.digits
# Property-based tests draw the same examples on every run (a hash of the test), and no example has a time
# limit: a busy machine must not fail them by chance. RESIGHT_FUZZ_RANDOM=1 draws fresh examples.
hypothesis.settings.register_profile(
    "resight",
    deadline=None,
    derandomize=not os.environ.get("RESIGHT_FUZZ_RANDOM"),
    suppress_health_check=[hypothesis.HealthCheck.too_slow],  # slow generation on a busy machine
)
hypothesis.settings.load_profile("resight")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    """Every test writes media to its own folder, so tests can count files left behind."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def photo_bytes(seed: int = 1, pattern_seed: int = 1, size: tuple[int, int] = (320, 240), **exif) -> bytes:
    shot = synthetic.render(synthetic.make_pattern(pattern_seed), seed=seed, size=size)
    return synthetic.with_exif(shot.jpeg, **exif) if exif else shot.jpeg


def make_zip(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def upload(name: str, data: bytes) -> services.PhotoUpload:
    return services.PhotoUpload(name, io.BytesIO(data))


@dataclass
class World:
    project: Project
    other_project: Project
    leopard: Species
    zebra: Species
    users: dict[str, User]
    sighting: Sighting
    asset: MediaAsset
    annotation: Annotation
    leopard_individual: Individual
    zebra_sighting: Sighting
    zebra_individual: Individual
    extra: dict[str, object] = field(default_factory=dict)


def make_user(username: str, org: Organization | None = None, role: str = Role.VIEWER, **kw) -> User:
    user = get_user_model().objects.create_user(username, password=PASSWORD, **kw)
    if org is not None:
        Membership.objects.create(user=user, organization=org, role=role)
    return user


@pytest.fixture
def world(db) -> World:
    owner = Organization.objects.create(name="Owner Org", slug="owner")
    stranger_org = Organization.objects.create(name="Stranger Org", slug="stranger")
    leopard = Species.objects.create(
        common_name="Leopard",
        scientific_name="Panthera pardus",
        viewpoints=["left", "right"],
        body_parts=["flank"],
        locations_sensitive=True,
    )
    zebra = Species.objects.create(common_name="Plains zebra", scientific_name="Equus quagga")
    project = Project.objects.create(organization=owner, name="Big Cats", slug="big-cats")
    other_project = Project.objects.create(organization=stranger_org, name="Elsewhere", slug="elsewhere")

    users: dict[str, User] = {
        str(role): make_user(role, owner, role)
        for role in (Role.ADMIN, Role.CURATOR, Role.CONTRIBUTOR, Role.VIEWER)
    }
    users["outsider"] = make_user("outsider", stranger_org, Role.ADMIN)
    shares = {
        "share_view": ([Right.VIEW], [], None),
        "share_curate_leopard": ([Right.CURATE], [leopard], None),
        "share_match": ([Right.MATCH], [], None),
        "share_expired": ([Right.VIEW, Right.CURATE], [], datetime.now(UTC) - timedelta(days=1)),
    }
    for name, (rights, species, expires) in shares.items():
        org = Organization.objects.create(name=name, slug=name.replace("_", "-"))
        users[name] = make_user(name, org, Role.ADMIN)
        agreement = SharingAgreement.objects.create(
            project=project, grantee=org, rights=rights, expires_at=expires
        )
        agreement.species.set(species)

    curator = users[Role.CURATOR]
    leopard_individual = services.individual_create(
        actor=curator, project=project, species=leopard, code="L1"
    )
    zebra_individual = services.individual_create(actor=curator, project=project, species=zebra, code="Z1")
    sighting = services.sighting_create(
        actor=curator,
        project=project,
        data=services.SightingData(
            observed_at=datetime(2026, 3, 1, 6, 0, tzinfo=UTC),
            latitude=-1.23456,
            longitude=35.12345,
            location_uncertainty_m=20,
            location_name="Den rock",
        ),
        photos=[upload("leopard.jpg", photo_bytes(seed=1))],
    )
    asset = sighting.media_assets.get()
    annotation = services.annotation_create(
        actor=curator,
        media_asset=asset,
        species=leopard,
        box=(10, 20, 200, 150),
        viewpoint=Viewpoint.LEFT,
        body_part="flank",
        individual=leopard_individual,
    )
    zebra_sighting = services.sighting_create(
        actor=curator,
        project=project,
        data=services.SightingData(
            observed_at=datetime(2026, 3, 2, 6, 0, tzinfo=UTC), latitude=-1.5, longitude=35.5
        ),
        photos=[upload("zebra.jpg", photo_bytes(seed=2, pattern_seed=2))],
        species=zebra,
    )
    zebra_annotation = zebra_sighting.annotations.get()
    services.annotation_update(
        actor=curator, annotation=zebra_annotation, changes={"individual": zebra_individual}
    )
    return World(
        project,
        other_project,
        leopard,
        zebra,
        users,
        sighting,
        asset,
        annotation,
        leopard_individual,
        zebra_sighting,
        zebra_individual,
    )


@pytest.fixture
def api_client_for():
    def make(user) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Real hashing costs ~0.3 s per user; the tests create many users and are not about hashing strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # DRF's throttles (POST /api/auth/token/) count requests in Django's cache, which outlives a test.
    cache.clear()


@dataclass
class Catalogue:
    world: World
    individuals: list[Individual]
    species: Species
    project: Project


def add_photo(
    world: World,
    individual_index: int,
    seed: int,
    *,
    individual: Individual | None = None,
    day: int = 0,
    actor: str = "curator",
) -> Annotation:
    shot = synthetic.render(synthetic.make_pattern(500 + individual_index), seed=seed, size=(640, 480))
    sighting = services.sighting_create(
        actor=world.users[actor],
        project=world.project,
        data=services.SightingData(
            observed_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day),
            latitude=-1.0 - 0.01 * individual_index,
            longitude=35.0,
        ),
        photos=[upload(f"i{individual_index}-{seed}.jpg", shot.jpeg)],
    )
    return services.annotation_create(
        actor=world.users[actor],
        media_asset=sighting.media_assets.get(),
        species=world.leopard,
        box=shot.box,
        viewpoint="left" if shot.facing == "left" else "right",
        body_part="flank",
        individual=individual,
    )


@pytest.fixture
def catalogue(world: World) -> Catalogue:
    individuals = []
    for i in range(4):
        individual = services.individual_create(
            actor=world.users["curator"], project=world.project, species=world.leopard, code=f"CAT-{i}"
        )
        for s in range(3):
            add_photo(world, i, seed=1000 * i + s, individual=individual, day=10 * s + i)
        individuals.append(individual)
    return Catalogue(world, individuals, world.leopard, world.project)


# A real Celery worker process for the tests that need one (fixture `worker`, see tests/worker.py).
pytest_plugins = ["tests.worker"]
