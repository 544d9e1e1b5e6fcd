"""Template filters of sighting pages and lists: stored times shown defensively (a page never fails on one
odd value), and the animals of a sighting once each."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import template
from django.templatetags.tz import datetimeobject

from catalog.models import Sighting
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


@register.filter
def animals(sighting: Sighting) -> list[str]:
    """The sighting's animals as tags, each once (uses its prefetched, visible annotations): an identified
    animal by its code, the unidentified ones by species."""
    seen: dict[str, None] = {}
    for a in sighting.annotations.all():
        seen[f"{a.species.common_name} · {a.individual.code}" if a.individual else a.species.common_name] = (
            None
        )
    return list(seen)
