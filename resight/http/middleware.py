"""Request guards every page and API endpoint share: bounded database waits, and query strings the
database can take."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.html import escape

from resight.http.errors import is_api_path
from resight.storage import StorageFull


def _busy(request: HttpRequest, status: int, message: str, *, standalone: bool = False) -> HttpResponse:
    """The answer to a request the server cannot serve now, with Retry-After. `standalone`: a page that needs
    nothing else (the site's template asks the database for the signed-in user's navigation)."""
    if is_api_path(request.path_info):
        response: HttpResponse = JsonResponse({"detail": message}, status=status)
    elif standalone:
        page = (
            f"<!doctype html><html lang=en><title>Resight</title><main><p>{escape(message)}</p></main></html>"
        )
        response = HttpResponse(page, status=status)
    else:
        response = TemplateResponse(request, "busy.html", {"message": message}, status=status).render()
    response["Retry-After"] = "5"
    return response


DATABASE_DOWN = "The database is not answering right now: nothing was changed. Try again in a moment."


class DatabaseLimits:
    """A web request waits at most RESIGHT_DB_LOCK_TIMEOUT_MS for a row another request or worker holds,
    and runs no statement longer than RESIGHT_DB_STATEMENT_TIMEOUT_MS: one long lock must not hold every
    server thread (an unrelated page took 8 s behind a 10 s lock). A lock wait that runs out answers 409,
    a statement that runs out 503, both with Retry-After.

    Set per connection (session settings, once per database connection: CONN_MAX_AGE keeps them), so
    workers, migrations and benchmarks, whose connections never serve a request, keep no such limits."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith("/health/"):  # liveness must not need the database
            try:
                self._limit()
            except OperationalError:
                return _busy(request, 503, DATABASE_DOWN, standalone=True)
        return self.get_response(request)

    @staticmethod
    def _limit() -> None:
        connection.ensure_connection()
        raw = connection.connection
        if getattr(connection, "_resight_limited", None) is raw:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                [f"{settings.RESIGHT_DB_LOCK_TIMEOUT_MS}ms", f"{settings.RESIGHT_DB_STATEMENT_TIMEOUT_MS}ms"],
            )
        connection._resight_limited = raw  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError):
            return None
        if isinstance(exception.__cause__, psycopg.errors.LockNotAvailable):
            return _busy(request, 409, "Someone else is changing this right now. Try again in a moment.")
        if isinstance(exception.__cause__, psycopg.errors.QueryCanceled):
            return _busy(request, 503, "The server is busy and gave up on this request. Try again soon.")
        # The server restarting or unreachable: the next request reconnects (CONN_HEALTH_CHECKS).
        return _busy(request, 503, DATABASE_DOWN, standalone=True)


class StorageErrors:
    """A photo, zip or CSV the media storage has no room for is refused with 507 Insufficient Storage and
    says that nothing was stored (resight.storage removed the partial file; the database rolled back)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, StorageFull):
            message = "The server's storage is full: nothing was stored. Try again later or tell an operator."
            return _busy(request, 507, message)
        return None


class QueryStringGuard:
    """A NUL character in a query string is refused (400) before any view: PostgreSQL cannot compare text
    with it, so `?q=%00` failed every search with a server error."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            if is_api_path(request.path_info):
                return JsonResponse({"detail": "The query string holds a NUL character."}, status=400)
            return HttpResponse(
                "The query string holds a NUL character.", status=400, content_type="text/plain"
            )
        return self.get_response(request)
