"""The API's JSON parser: bad JSON of any shape is a 400, never a 500."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.utils.translation import gettext as _
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser, answering 400 for JSON nested too deeply to parse.

    The json module parses recursively: about a thousand nested brackets raise RecursionError,
    which is not the ValueError DRF turns into a ParseError, so every JSON endpoint gave a 500.
    """

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None
