"""Forms of the platform layer's pages: proposing a sharing agreement, making a personal API token,
registering a webhook."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils import timezone

from resight.models import Organization, Project, Right, TokenScope, WebhookEvent
from resight.permissions import Action, AnyUser, projects_for
from resight.sharing import SPECIES, organizations_of

REGION_HELP = (
    "Optional region, in decimal degrees: only sightings inside south..north and west..east are shared."
)


class AgreementProposalForm(forms.Form):
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), help_text="One of the projects you manage."
    )
    grantee = forms.ModelChoiceField(
        queryset=Organization.objects.order_by("name"), label="Share with", help_text="Another organisation."
    )
    rights = forms.MultipleChoiceField(choices=Right.choices, widget=forms.CheckboxSelectMultiple)
    species = forms.ModelMultipleChoiceField(
        queryset=SPECIES._default_manager.order_by("common_name"),
        required=False,
        help_text="Leave empty to share every species of the project.",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional: the agreement ends at the start of this day (UTC).",
    )

    south = forms.FloatField(required=False, min_value=-90, max_value=90, help_text=REGION_HELP)
    west = forms.FloatField(required=False, min_value=-180, max_value=180)
    north = forms.FloatField(required=False, min_value=-90, max_value=90)
    east = forms.FloatField(required=False, min_value=-180, max_value=180)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        projects = projects_for(user, Action.MANAGE)
        self.fields["project"].queryset = projects  # type: ignore[attr-defined]
        # The other organisations only: one's own members have their roles already.
        others = Organization.objects.exclude(pk__in=organizations_of(user).values("pk")).order_by("name")
        self.fields["grantee"].queryset = others  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        day = data.pop("expires_on", None)
        data["expires_at"] = (
            dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if isinstance(day, dt.date) else None
        )
        if data["expires_at"] is not None and data["expires_at"] <= timezone.now():
            self.add_error("expires_on", "Choose a day after today.")
        box = [data.pop(k, None) for k in ("south", "west", "north", "east")]
        data["region"] = None
        if any(v is not None for v in box):
            if any(v is None for v in box):
                self.add_error("south", "A region needs all four of south, west, north and east.")
            else:
                data["region"] = tuple(box)
        return data


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Where the token is used, e.g. 'camera-trap sync script'."
    )
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Read: GET requests. Write: every other change. Match: start match jobs.",
    )
    days = forms.IntegerField(
        min_value=1, max_value=365, initial=90, label="Expires after (days)", help_text="1 to 365 days."
    )


class WebhookForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",  # an address typed without a scheme is https (Django 6's default)
        label="Endpoint URL",
        help_text="Receives a POST of JSON for each event (https://...).",
    )
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
        if len(organizations[:2]) == 1:
            self.initial["organization"] = organizations[0].pk
