"""Telling users what awaits them. Services call `notify` inside their transaction; the top bar polls the
unread count (resight.views)."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from resight.models import Notification


def notify(recipients: Iterable[User], *, kind: str, text: str, url: str = "") -> int:
    rows = [
        Notification(recipient=u, kind=kind, text=text[:300], url=url)
        for u in {u.pk: u for u in recipients}.values()
    ]
    Notification.objects.bulk_create(rows)
    return len(rows)


def unread(user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user, read_at__isnull=True)


def mark_read(user: User, ids: Iterable[int] | None = None) -> int:
    rows = unread(user)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    return rows.update(read_at=timezone.now())
