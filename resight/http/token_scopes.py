"""The scopes of personal API tokens (resight.sign_in.token_create), enforced as a DRF permission every API
view has (settings.REST_FRAMEWORK). A module of its own: DRF imports its default permission classes while it
defines APIView, so this module must not import any view."""

from __future__ import annotations

from typing import Any

from knox.models import AuthToken
from rest_framework.permissions import SAFE_METHODS, BasePermission

from resight.models import PersonalToken, TokenScope


class TokenScopes(BasePermission):
    """A personal token acts only within its scopes: read for GET/HEAD/OPTIONS, match for starting match jobs
    (views say which of their actions need it in `token_scopes`), write for every other change. Sessions and
    tokens from the password exchange are not limited here (the policy still is)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, AuthToken):
            return True
        personal = PersonalToken.objects.filter(token=token).first()
        if personal is None:
            return True
        needed = required_scope(request.method, view)
        if needed is None or needed in personal.scopes:
            return True
        self.message = f"This token lacks the {needed} scope ({', '.join(personal.scopes)})."
        return False


def required_scope(method: str, view: Any) -> str | None:
    scopes: dict[str | None, str | None] = getattr(view, "token_scopes", {})
    action = getattr(view, "action", None)
    if action in scopes:
        return scopes[action]
    return TokenScope.READ if method in SAFE_METHODS else TokenScope.WRITE
