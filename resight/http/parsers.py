"""Request body parsers of the API (DEFAULT_PARSER_CLASSES). A module of its own: DRF reads its settings
while its views module is imported, so the parser cannot live beside the viewsets."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with deeply nested input refused as malformed (400) rather than overflowing the
    decoder's recursion limit (a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
