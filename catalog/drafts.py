"""Photos kept between two tries of a form: a New sighting refused for a mistake in its fields (or shown
with warnings to confirm) keeps the photos already sent, so the user corrects the field without choosing
them again. Stored under drafts/ for the user who sent them, named by a signed token the form carries; removed
once used, or after a day (catalog.tasks)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.text import get_valid_filename

from catalog import services
from resight.permissions import AnyUser

SALT = "resight.catalog.drafts"
ROOT = "drafts"
MAX_AGE = dt.timedelta(days=1)


def keep(user: AnyUser, photos: Sequence[services.PhotoUpload]) -> str:
    """Store the photos for `user`; the token the form carries to find them again."""
    draft = uuid.uuid4().hex
    for n, photo in enumerate(photos):
        photo.stream.seek(0)
        default_storage.save(
            f"{_folder(user, draft)}/{n:03d}-{get_valid_filename(photo.name)}",
            ContentFile(photo.stream.read()),
        )
    return signing.dumps({"user": user.pk, "draft": draft}, salt=SALT)


def _folder(user: AnyUser, draft: str) -> str:
    return f"{ROOT}/{user.pk}/{draft}"


def _draft(user: AnyUser, token: str) -> str | None:
    try:
        value = signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    return value["draft"] if value.get("user") == user.pk else None


def files(user: AnyUser, token: str) -> list[str]:
    """The stored names of `user`'s kept photos (none for a token of someone else, or expired)."""
    draft = _draft(user, token) if token else None
    if draft is None:
        return []
    try:
        _, names = default_storage.listdir(_folder(user, draft))
    except FileNotFoundError:
        return []
    return [f"{_folder(user, draft)}/{name}" for name in sorted(names)]


def names(user: AnyUser, token: str) -> list[str]:
    """The kept photos' names as they were sent."""
    return [path.rsplit("/", 1)[1].split("-", 1)[1] for path in files(user, token)]


def uploads(user: AnyUser, token: str) -> list[services.PhotoUpload]:
    return [
        services.PhotoUpload(path.rsplit("/", 1)[1].split("-", 1)[1], default_storage.open(path, "rb"))
        for path in files(user, token)
    ]


def discard(user: AnyUser, token: str) -> None:
    for path in files(user, token):
        default_storage.delete(path)


def purge(older_than: dt.timedelta = MAX_AGE) -> int:
    """Remove kept photos older than `older_than` (forms never sent again). Returns how many."""
    cutoff = timezone.now() - older_than
    removed = 0
    try:
        users, _ = default_storage.listdir(ROOT)
    except FileNotFoundError:
        return 0
    for user_folder in users:
        for draft in default_storage.listdir(f"{ROOT}/{user_folder}")[0]:
            folder = f"{ROOT}/{user_folder}/{draft}"
            for name in default_storage.listdir(folder)[1]:
                if default_storage.get_modified_time(f"{folder}/{name}") < cutoff:
                    default_storage.delete(f"{folder}/{name}")
                    removed += 1
    return removed
