"""The rules every stored value of the catalogue obeys, whoever writes it (form, API, bulk CSV, EXIF, admin).

Each rule is a Django validator on the model field, so `full_clean` in the services applies it to every
surface with one message. The bounds are wide enough for any real record and narrow enough that every stored
value can be read back, converted to any time zone and rendered: a time in year 9999 with a -12:00 offset is
year 10000 in UTC, which PostgreSQL stores but Python cannot load, and every page listing it would fail.
"""

from __future__ import annotations

import datetime as dt
import math

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.utils import timezone

# Time zones are the platform's (projects have one too): one rule, kept there; named here for the fields
# (and the migrations) of the catalogue.
from resight.validators import known_time_zones, validate_time_zone  # noqa: F401

# The oldest photo-identification records (whale and big-cat catalogues) start in the 20th century; 1900
# leaves room for digitised archives.
EARLIEST_TIME = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
# A sighting is never in the future; a day of slack covers clocks and zones (UTC+14 is ahead of UTC by 14 h).
FUTURE_SLACK = dt.timedelta(days=1)
# Any stored time stays below this, whatever "now" is when it is written (the database checks it too).
LATEST_STORABLE_TIME = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
# Half the Earth's circumference: no position is less certain than that.
MAX_UNCERTAINTY_M = 20_037_509.0

no_nul = ProhibitNullCharactersValidator()


def latest_time() -> dt.datetime:
    return min(timezone.now() + FUTURE_SLACK, LATEST_STORABLE_TIME)


def is_plausible_time(value: dt.datetime) -> bool:
    """Whether `value` (aware) may be stored as the time something was seen or photographed."""
    try:
        return EARLIEST_TIME <= value <= latest_time()
    except (TypeError, OverflowError):  # naive, or out of datetime's range in UTC
        return False


def validate_observation_time(value: dt.datetime) -> None:
    if timezone.is_naive(value):
        raise ValidationError("Give the time with its time zone.", code="naive_time")
    if not is_plausible_time(value):
        raise ValidationError(
            "The time %(value)s is not plausible: it must lie between %(earliest)s and now.",
            code="time_range",
            params={"value": _shown(value), "earliest": f"{EARLIEST_TIME:%Y-%m-%d}"},
        )


def validate_calendar_date(value: dt.date) -> None:
    """A day a session or a report may start or end on (its midnight, and the next, must be storable)."""
    if not EARLIEST_TIME.date() <= value < LATEST_STORABLE_TIME.date() - dt.timedelta(days=1):
        raise ValidationError(
            "%(value)s is outside %(earliest)s to %(latest)s.",
            code="date_range",
            params={
                "value": value.isoformat(),
                "earliest": EARLIEST_TIME.date().isoformat(),
                "latest": (LATEST_STORABLE_TIME.date() - dt.timedelta(days=2)).isoformat(),
            },
        )


def _shown(value: dt.datetime) -> str:
    try:
        return value.isoformat(sep=" ", timespec="minutes")
    except (ValueError, OverflowError):
        return repr(value)


def validate_finite(value: float) -> None:
    # NaN passes every comparison-based validator (NaN < -90 is False) and infinity breaks distances.
    if not math.isfinite(value):
        raise ValidationError("Give a finite number.", code="not_finite")


def validate_uncertainty(value: float) -> None:
    validate_finite(value)
    if not 0 <= value <= MAX_UNCERTAINTY_M:
        raise ValidationError(
            "The location uncertainty must lie between 0 and %(max)s m (half the Earth's circumference).",
            code="uncertainty_range",
            params={"max": f"{MAX_UNCERTAINTY_M:,.0f}"},
        )


def validate_box(box: tuple[int, int, int, int], width: int, height: int) -> None:
    """An animal's box (x, y, width, height) in the pixels of a `width` x `height` photo."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValidationError({"box": ["The box must have a positive width and height."]})
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValidationError({"box": [f"The box must lie inside the {width}x{height} photo."]})
