"""Template filters that show stored times defensively: a page never fails on one odd value."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import template
from django.templatetags.tz import datetimeobject

from catalog.validators import known_time_zones

register = template.Library()


@register.filter
def in_zone(value: dt.datetime | None, zone_name: str) -> dt.datetime | None:
    """`value` in the IANA zone `zone_name`; in UTC when the zone is unknown or the conversion overflows.

    Django's own `timezone` filter raises on names such as "/etc/passwd" (ValueError) and on times near
    the ends of datetime's range; rows written before validation existed may hold either."""
    if value is None:
        return None
    zone = zoneinfo.ZoneInfo(zone_name) if zone_name in known_time_zones() else dt.UTC
    try:
        local = value.astimezone(zone)
    except (OverflowError, ValueError):
        return value
    # As Django's own filter does: a datetime subclass marked so that rendering does not convert it back
    # to the server's zone.
    shown = datetimeobject(*local.timetuple()[:6], local.microsecond, local.tzinfo)
    shown.convert_to_local_time = False  # type: ignore[attr-defined]
    return shown
