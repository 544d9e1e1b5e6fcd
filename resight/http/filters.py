"""Filtering of API lists (DEFAULT_FILTER_BACKENDS). A module of its own: DRF reads its settings while its
generic views are imported, so the backend cannot live beside the viewsets."""

from __future__ import annotations

from django.db import models
from django_filters.rest_framework import DjangoFilterBackend, FilterSet

from resight.http.params import IdFilter


class PolicyFilterSet(FilterSet):
    """Filters on relations take ids and never look them up: an id the user may not see filters like one
    that does not exist (an empty list), where django-filter's own choice filter answered 400 for an
    unknown id and 200 for a hidden one, telling which ids exist in other organisations."""

    FILTER_DEFAULTS = {
        **FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
        models.ManyToManyField: {"filter_class": IdFilter},
    }


class PolicyFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend with PolicyFilterSet as the base of the filter sets it makes from
    `filterset_fields` (DEFAULT_FILTER_BACKENDS)."""

    filterset_base = PolicyFilterSet
