"""The platform layer's pages: the signed-in user's notifications (the top bar's unread badge, polled by
htmx, and their page) and the sharing agreements of their organisations."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms as django_forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from resight import forms, notifications, sharing, sign_in, webhooks
from resight.http.params import parse_id
from resight.models import Notification, Right, SharingAgreement, WebhookDelivery
from resight.permissions import organizations_administered


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


@dataclass
class AgreementRow:
    """One agreement as the Sharing page shows it: each right in words, and what this user may do."""

    agreement: SharingAgreement
    rights: list[tuple[str, str]]
    species: list[str]
    may_answer: bool
    may_revoke: bool
    terms_pending: bool
    region: str


@login_required
@require_GET
def sharing_page(request: HttpRequest) -> HttpResponse:
    """What our organisations share and what is shared with us, each right in words; admins propose,
    answer and revoke here (resight.sharing)."""
    return _render_sharing(request, forms.AgreementProposalForm(user=request.user))


def _render_sharing(
    request: HttpRequest, form: forms.AgreementProposalForm, status: int = 200
) -> HttpResponse:
    user = request.user
    ours = set(sharing.organizations_of(user).values_list("pk", flat=True))
    rows = [
        AgreementRow(
            agreement=a,
            rights=[(Right(r).label, sharing.RIGHT_EFFECTS[r]) for r in a.rights],
            species=[s.common_name for s in a.species.all()],
            may_answer=sharing.may_answer(user, a),
            may_revoke=sharing.may_revoke(user, a),
            terms_pending=a.status == "active" and sharing.terms_pending(user, a),
            region=sharing.region_words(a.region) if a.region else "",
        )
        for a in sharing.agreements_for(user).prefetch_related("species")
    ]
    # An operator who belongs to no organisation sees every agreement as one list.
    outgoing = [r for r in rows if r.agreement.project.organization_id in ours or not ours]
    incoming = [r for r in rows if r.agreement.grantee_id in ours and r not in outgoing]
    context = {
        "outgoing": outgoing,
        "incoming": incoming,
        "form": form if sharing.can_propose(user) else None,
        "effects": [(Right(r).label, words) for r, words in sharing.RIGHT_EFFECTS.items()],
    }
    return render(request, "resight/sharing.html", context, status=status)


@login_required
@require_POST
def sharing_propose(request: HttpRequest) -> HttpResponse:
    form = forms.AgreementProposalForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            agreement = sharing.agreement_propose(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Proposed to {agreement.grantee.name}: they accept or decline.")
            return redirect("sharing")
    return _render_sharing(request, form, status=400)


@login_required
@require_POST
def sharing_settle(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    """Accept, decline or revoke one agreement, or accept its project's terms (the services check who may)."""
    agreement = get_object_or_404(sharing.agreements_for(request.user), pk=pk)
    try:
        if verb == "terms":
            sharing.terms_accept(actor=request.user, agreement=agreement)
            messages.success(request, f"You accepted the terms of use of {agreement.project.name}.")
        else:
            settle = {
                "accept": sharing.agreement_accept,
                "decline": sharing.agreement_decline,
                "revoke": sharing.agreement_revoke,
            }[verb]
            settled = settle(actor=request.user, agreement=agreement)
            messages.success(request, f"The agreement with {settled.grantee.name} is {settled.status}.")
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    return redirect("sharing")


def _add_errors(form: django_forms.Form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request: HttpRequest) -> HttpResponse:
    """Personal API tokens: made here with a name, scopes and a lifetime (the secret is shown once), listed
    and revoked (resight.sign_in)."""
    form = forms.TokenForm(request.POST or None)
    secret = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _, secret = sign_in.token_create(actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
                status = 400
            else:
                form = forms.TokenForm()
        else:
            status = 400
    context = {"form": form, "secret": secret, "tokens": sign_in.own_tokens(request.user)}
    return render(request, "resight/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_key: str) -> HttpResponse:
    if sign_in.token_revoke(actor=request.user, token_key=token_key):
        messages.success(request, "The token is revoked: requests made with it are refused from now on.")
    else:
        messages.error(request, "No such token of yours.")
    return redirect("tokens")


@login_required
@require_http_methods(["GET", "POST"])
def webhooks_page(request: HttpRequest) -> HttpResponse:
    """The webhooks of the organisations the user administers, their delivery log, and a form for a new
    one (its signing secret shown once)."""
    user = request.user
    organizations = organizations_administered(user)
    form = forms.WebhookForm(request.POST or None, organizations=organizations)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = webhooks.webhook_create(actor=user, **form.cleaned_data)
            except ValidationError as exc:
                _add_errors(form, exc)
                status = 400
            else:
                form = forms.WebhookForm(organizations=organizations)
        else:
            status = 400
    hooks = webhooks.webhooks_for(user).select_related("organization")
    context = {
        "form": form if organizations.exists() else None,
        "created": created,
        "hooks": hooks,
        "deliveries": WebhookDelivery.objects.filter(webhook__in=hooks).select_related("webhook")[:50],
    }
    return render(request, "resight/webhooks.html", context, status=status)


@login_required
@require_POST
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    hook = get_object_or_404(webhooks.webhooks_for(request.user), pk=pk)
    webhooks.webhook_delete(actor=request.user, webhook=hook)
    messages.success(request, f"The webhook to {hook.url} is deleted.")
    return redirect("webhooks")
