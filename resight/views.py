"""The notifications of the signed-in user: the top bar's unread badge (polled by htmx) and their page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from resight import notifications
from resight.http.params import parse_id
from resight.models import Notification


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required ran first
    return request.user


@login_required
@require_GET
def notification_badge(request: HttpRequest) -> HttpResponse:
    unread = notifications.unread(_user(request))
    return render(
        request, "resight/_notification_badge.html", {"count": unread.count(), "latest": unread[:5]}
    )


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    rows = Notification.objects.filter(recipient=_user(request))[:100]
    return render(request, "resight/notifications.html", {"notifications": rows})


@login_required
@require_POST
def notification_read(request: HttpRequest) -> HttpResponse:
    """Mark one (`id`) or all as read; opening one goes on to where it points."""
    user = _user(request)
    ident = parse_id(request.POST.get("id"))
    if ident is not None:
        notifications.mark_read(user, [ident])
        target = Notification.objects.filter(pk=ident, recipient=user).values_list("url", flat=True)
        return redirect(target.first() or "notifications")
    notifications.mark_read(user)
    return redirect("notifications")
