"""What every page's navigation needs to know: which actions the signed-in user may take anywhere, so no
link leads to a page with nothing they may do (settings.TEMPLATES context processors)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from resight.permissions import Action, actions_anywhere, is_operator


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav": {}}
    actions = actions_anywhere(user)
    return {
        "nav": {
            "contribute": Action.CONTRIBUTE in actions,
            "curate": Action.CURATE in actions,
            "operator": is_operator(user),
        }
    }
