"""Rules of values the platform layer stores too (projects have a time zone): kept here, below the apps,
and used by catalog.validators."""

from __future__ import annotations

import functools
import zoneinfo

from django.core.exceptions import ValidationError

MAX_TIME_ZONE_LENGTH = 64


@functools.cache
def known_time_zones() -> frozenset[str]:
    # The IANA names of the system's (or tzdata's) database. ZoneInfo() itself also opens paths such as
    # "../../x" or files that are no zone at all, so the name is looked up in this set instead.
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def validate_time_zone(name: str) -> None:
    if not isinstance(name, str) or name not in known_time_zones():
        shown = str(name)[:MAX_TIME_ZONE_LENGTH]
        raise ValidationError(
            "Unknown time zone “%(name)s”: use an IANA name such as Africa/Nairobi or UTC.",
            code="time_zone",
            params={"name": shown},
        )
