"""The OpenAPI schema (drf-spectacular): the error answers every endpoint may give, documented once.

drf-spectacular documents only the success of each operation. The policy, the services and the request
guards add the same few errors everywhere, so the schema class adds them to every operation that can give
them (an operation's own `@extend_schema(responses=...)` for a code wins):

- 400: validation (fields, or the services' business rules), malformed input (JSON that does not parse or
  nests too deeply, a NUL in the query string): an object of field names (or `non_field_errors`, or
  `detail`) to messages.
- 401: no or an invalid, expired or revoked token, where a signed-in user is needed.
- 403: the user sees the object but may not do this with it.
- 404: what the user may not see, an unknown id, a page beyond the last.
- 415: a request body in a Content-Type the operation does not read (or one its parser cannot read).
- 409 / 503: another request holds the row too long / the statement ran too long (resight.http.middleware
  .DatabaseLimits), with Retry-After.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})
FIELD_ERRORS: dict[str, Any] = {
    "type": "object",
    "description": "Messages by field name; `non_field_errors` for the request as a whole, `detail` for "
    "input that could not be read. Nested fields nest.",
    "additionalProperties": {},
}
BAD_REQUEST = OpenApiResponse(FIELD_ERRORS, description="Invalid or malformed input.")
UNAUTHENTICATED = OpenApiResponse(
    DETAIL, description='No valid credentials: send "Authorization: Token <token>" (or sign in).'
)
FORBIDDEN = OpenApiResponse(DETAIL, description="The user may see this but not do this.")
NOT_FOUND = OpenApiResponse(
    DETAIL, description="No such object, or none the user may see (the two are not told apart)."
)
UNSUPPORTED = OpenApiResponse(DETAIL, description="A body in a Content-Type the operation does not read.")
CONFLICT = OpenApiResponse(
    DETAIL, description="Someone else is changing this right now; Retry-After says when to try again."
)
BUSY = OpenApiResponse(DETAIL, description="The server gave up on a long request; Retry-After says when.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema with the API's error responses added to each operation, and its optional
    query parameters marked as allowed empty: `?species=` or `?page=` is no filter and the first page, as
    django-filter, DRF's search, ordering and pagination treat an empty value (an HTML form's empty field)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            if parameter.get("in") == "query" and not parameter.get("required"):
                parameter.setdefault("allowEmptyValue", True)
        return operation

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        errors = {"400": BAD_REQUEST}
        # Anonymous users are refused (401) everywhere but where the view allows them (the token endpoint).
        auth = self.get_auth()
        if auth and {} not in auth:
            errors["401"] = UNAUTHENTICATED
            errors["403"] = FORBIDDEN
            errors["404"] = NOT_FOUND
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors["415"] = UNSUPPORTED
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):  # reads take no row locks
            errors["409"] = CONFLICT
        errors["503"] = BUSY
        return errors
