"""OpenAPI generation: drf-spectacular's AutoSchema, with the error answers every operation can give.

Documenting them is what lets a schema-driven fuzzer (and a client generator) tell a refused
request from a broken server: every 4xx here is a JSON object, keyed by field or ``detail``.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import Direction

ERROR_SCHEMA = {
    "type": "object",
    "description": gettext_lazy('Field-keyed messages (`{"cron": ["…"]}`) or `{"detail": "…"}`.'),
    "additionalProperties": True,
}
ERRORS = {
    "400": gettext_lazy("Invalid input: the field and the reason."),
    "401": gettext_lazy("Not authenticated."),
    "403": gettext_lazy("Not allowed."),
    "404": gettext_lazy("Not found."),
    "409": gettext_lazy("Conflicts with the current state (duplicate id, system job)."),
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = ["400", "401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        error_schema = {**ERROR_SCHEMA, "description": str(ERROR_SCHEMA["description"])}
        for code in codes:
            responses.setdefault(
                code, {"description": str(ERRORS[code]), "content": {"application/json": {"schema": error_schema}}}
            )
        return responses
