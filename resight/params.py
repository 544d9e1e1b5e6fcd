"""Reading ids from query strings and forms: one rule, so no page fails on `?project=²` (a Unicode digit
int() refuses) or on a number beyond PostgreSQL's bigint."""

from __future__ import annotations


def parse_id(value: str | None) -> int | None:
    """A primary key from a request parameter: ASCII digits within bigint, else None."""
    if value and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None
