"""Reading ids from query strings and forms: one rule, so no page fails on `?project=²` (a Unicode digit
int() refuses) or on a number beyond PostgreSQL's bigint."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field

MAX_ID_DIGITS = 18
MAX_ID = 10**MAX_ID_DIGITS - 1


def parse_id(value: str | None) -> int | None:
    """A primary key from a request parameter: ASCII digits within bigint, else None."""
    if value and value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS:
        return int(value)
    return None


class IdField(forms.CharField):
    """A form field holding an id, read by parse_id: empty is None, anything else not an id is invalid."""

    default_error_messages = {"invalid": "Enter an id: digits only."}

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]  # an id, not text
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        ident = parse_id(text)
        if ident is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return ident


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    """A django-filter filter on an id (e.g. through a relation), read by parse_id: `?species=1.5`, `-3` or
    `١٢` is refused (400) like any invalid filter value, never compared with ids as a decimal."""

    field_class = IdField
