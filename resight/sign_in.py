"""Signing in to the API: expiring, listable, revocable tokens (django-rest-knox) issued for a username and
password that django-axes counts and locks out, and DRF throttles per client.

The libraries do the work; what is here is the glue they leave to the project:
- knox's LoginView expects an already authenticated user (its docs pair it with a session or basic auth);
  the documented contract is a password exchange, so `TokenObtainView` checks the password through
  `authenticate(request=...)` (which is what lets axes count and refuse it) and answers axes' lockout as the
  API's JSON 429 (axes' middleware only rewrites responses of plain Django requests: it never sees DRF's).
- knox has no endpoint listing a user's tokens or revoking one of them: `TokenViewSet`.
- knox does not revoke tokens when their user's password changes or the user is deactivated (Django ties
  only sessions to the password hash): `revoke_tokens_on_credential_change`.
- knox tokens carry no scopes: personal tokens made in the browser (`token_create`) name theirs in
  PersonalToken, and `resight.http.token_scopes.TokenScopes` (a DRF permission every API view has) refuses
  what they do not cover.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.signals import pre_save
from django.http import Http404
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from knox import views as knox_views
from knox.models import AuthToken
from rest_framework import mixins, serializers, status, viewsets

# DRF's own username/password serializer (its authtoken app is no longer installed; the serializer does not
# need it): it calls authenticate() with the request, so axes sees the attempt.
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from resight import audit
from resight.http.schema import DETAIL, FIELD_ERRORS
from resight.models import PersonalToken, TokenScope
from resight.permissions import AnyUser, user_or_none

AXES_USERNAME_LENGTH: int = AccessAttempt._meta.get_field("username").max_length


class TokenScheme(KnoxTokenScheme):
    """drf-spectacular's knox scheme under the name DRF's token scheme had ("tokenAuth"): the header and its
    "Token" prefix are unchanged, so clients generated from the schema keep working."""

    name = "tokenAuth"
    priority = 1


class LockedOut(Throttled):
    """429 with Retry-After, like DRF's throttling, for a username+address django-axes has locked."""

    default_detail = "Too many failed sign-in attempts for this username from this address."
    default_code = "locked_out"


class IssuedTokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text='The secret: send it as "Authorization: Token <token>".')
    expiry = serializers.DateTimeField(allow_null=True)


class ApiTokenSerializer(serializers.ModelSerializer[AuthToken]):
    """A token as its owner sees it in the list: never the secret (knox stores only its hash)."""

    token_key = serializers.CharField(
        read_only=True, help_text="The first characters of the token: it names the token in DELETE."
    )

    class Meta:
        model = AuthToken
        fields = ["token_key", "created", "expiry"]


class TokenObtainView(knox_views.LoginView):
    """POST username and password (JSON or form): a new token and its expiry."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "auth-token"

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: IssuedTokenSerializer,
            400: OpenApiResponse(FIELD_ERRORS, description="Wrong username or password, or one missing."),
            429: OpenApiResponse(
                DETAIL,
                description="Too many requests from this client, or too many failed sign-ins for this "
                "username from this address; Retry-After says when to try again.",
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        if not serializer.is_valid():
            # Set on this request by axes while it refused or counted the attempt.
            if getattr(request, "axes_locked_out", False):
                raise LockedOut(wait=settings.AXES_COOLOFF_TIME.total_seconds())
            raise serializers.ValidationError(serializer.errors)
        request.user = serializer.validated_data["user"]
        # knox creates the token and sends user_logged_in (axes forgets this pair's failures).
        response: Response = super().post(request, *args, **kwargs)
        return response


class LogoutView(knox_views.LogoutView):
    """Revokes the token this request was made with."""

    token_scopes = {None: None}  # any token may end itself

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().post(request, *args, **kwargs)
        return response


class LogoutAllView(knox_views.LogoutAllView):
    """Revokes every token of the user this request's token belongs to."""

    token_scopes = {None: None}

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response: Response = super().post(request, *args, **kwargs)
        return response


@extend_schema_view(
    list=extend_schema(
        description="The user's own unexpired tokens: key, created, expiry; never the secret."
    ),
    destroy=extend_schema(description="Revokes one of the user's own tokens, named by its key."),
)
class TokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet[AuthToken]):
    """The user's own API tokens."""

    serializer_class = ApiTokenSerializer
    lookup_field = "token_key"
    filter_backends: list[type] = []
    token_scopes = {"list": None, "destroy": None}  # any token may list and revoke its user's tokens

    def get_queryset(self) -> QuerySet[AuthToken]:
        user = self.request.user
        if not user.is_authenticated:  # the schema generator's request
            return AuthToken.objects.none()
        tokens = AuthToken.objects.filter(user=user).order_by("-created")
        if self.action == "list":
            tokens = tokens.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
        return tokens

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # By key, not get_object(): keys are prefixes of the secret, so two tokens could share one; both go.
        # Another user's key matches nothing in this user's tokens: 404, as for a key that never existed.
        deleted, _ = self.get_queryset().filter(token_key=kwargs["token_key"]).delete()
        if not deleted:
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)


MAX_TOKEN_DAYS = 365


def token_create(*, actor: AnyUser, name: str, scopes: list[str], days: int) -> tuple[PersonalToken, str]:
    """A personal token for `actor`: its record and its secret (shown once; only a hash is kept)."""
    user = user_or_none(actor)
    if user is None:
        raise PermissionDenied("Sign in to make a token.")
    chosen = [s for s in TokenScope.values if s in set(scopes)]
    problems = {}
    if not chosen or len(set(scopes)) != len(chosen):
        problems["scopes"] = "Choose one or more of: read, write, match."
    if not 1 <= days <= MAX_TOKEN_DAYS:
        problems["days"] = f"A token lives 1 to {MAX_TOKEN_DAYS} days."
    if not name.strip() or len(name) > 100 or "\x00" in name:
        problems["name"] = "Name the token (up to 100 characters): where it is used."
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        token, secret = AuthToken.objects.create(user=user, expiry=dt.timedelta(days=days))
        personal = PersonalToken.objects.create(token=token, name=name.strip(), scopes=chosen)
        audit.record(
            actor=user,
            action="token.create",
            obj=personal,
            object_id=token.token_key,
            changes={
                "scopes": [None, chosen],
                "expiry": [None, token.expiry.isoformat() if token.expiry else None],
            },
        )
    return personal, secret


def token_revoke(*, actor: AnyUser, token_key: str) -> int:
    """Revoke the user's own tokens with this key (keys are secret prefixes: two could share one)."""
    user = user_or_none(actor)
    tokens = AuthToken.objects.filter(user=user, token_key=token_key) if user else AuthToken.objects.none()
    with transaction.atomic():
        for token in tokens:
            audit.record(
                actor=user,
                action="token.revoke",
                obj=token,
                object_id=token.token_key,
                object_repr=f"API token {token.token_key}… of {user}",
            )
        deleted, _ = tokens.delete()
    return deleted


def own_tokens(user: AnyUser) -> QuerySet[AuthToken]:
    """The user's unexpired tokens, newest first, with their names and scopes where made in the browser."""
    member = user_or_none(user)
    if member is None:
        return AuthToken.objects.none()
    live = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return AuthToken.objects.filter(live, user=member).select_related("personal").order_by("-created")


def axes_username(request: Any, credentials: dict[str, Any] | None = None) -> Any:
    """The username django-axes counts a sign-in under (AXES_USERNAME_CALLABLE): the one sent, as axes reads
    it, cut to the length of axes' column. A longer one (no account has one) failed every sign-in surface
    (login page, admin, token endpoint) with a 500 when axes stored it; now it is counted like any other."""
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")  # axes' default
    username = credentials.get(field) if credentials else getattr(request, "data", request.POST).get(field)
    return username[:AXES_USERNAME_LENGTH] if isinstance(username, str) else username


def revoke_tokens_on_credential_change(
    sender: Any, instance: Any, update_fields: Any = None, **_: Any
) -> None:
    """A new password (or an unusable one) or a deactivated account revokes every API token of the user.

    The stored hash is compared, so any way of changing it counts (admin, changepassword, set_password);
    so does a hasher upgrade at sign-in, which logs the user's other sessions out too. Revoked before the
    save: a save that then fails leaves the user signed out, the safe side."""
    if instance.pk is None or (
        update_fields is not None and not {"password", "is_active"} & set(update_fields)
    ):
        return  # a new user, or e.g. last_login written at sign-in
    before = type(instance)._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"] and not instance.is_active):
        AuthToken.objects.filter(user_id=instance.pk).delete()


def connect_signals() -> None:
    pre_save.connect(
        revoke_tokens_on_credential_change,
        sender=get_user_model(),
        dispatch_uid="resight.sign_in.revoke_tokens_on_credential_change",
    )
