"""Which URLs answer errors in JSON, and the 404 for URLs that match no route."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

# The URLs the API schema documents: the API itself, photo bytes and annotation crops. Their errors are JSON
# like DRF's, also where no view runs: a path that matches no route (an id such as `1.5`, `-3` or `a/b` that
# the route's pattern refuses) and the request guards of resight.http.middleware.
API_PATH = re.compile(r"/(api|media)/|/annotations/.+/crop/\Z", re.DOTALL)  # an id may hold a newline


def is_api_path(path: str) -> bool:
    """Whether errors at `path` are answered in JSON ({"detail": ...}) rather than as an HTML page."""
    return API_PATH.match(path) is not None


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_path(request.path_info):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
