"""OpenAPI schema (drf-spectacular): the errors each operation answers with.

Every API error has the body of core.api.exception_handler; the schema documents it
for the statuses an operation can produce, so that clients (and the fuzz test,
tests/test_api_fuzz.py) can rely on the documented codes.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiResponse
from rest_framework import permissions, serializers


class ApiErrorSerializer(serializers.Serializer[Any]):
    """The body of every API error (DESIGN.md section 4)."""

    error = serializers.CharField()
    details = serializers.DictField(help_text="the field, row and reason that failed")


ERRORS = {
    400: "Invalid input: `details` names the field (and row) that failed.",
    401: "No valid credentials (a service token or a signed-in session).",
    403: "The caller's role does not allow this action.",
    404: "No such object.",
    409: "The object's state does not allow this action now.",
    412: "The object changed since the revision the request names.",
    413: "The request body is larger than the server accepts.",
}


def api_error(status: int, description: str | None = None) -> OpenApiResponse:
    """An error response for extend_schema(responses=...)."""
    return OpenApiResponse(ApiErrorSerializer, description=description or ERRORS[status])


class ErrorDocumentingSchema(AutoSchema):
    """Adds to what extend_schema lists: 400 where a body or query parameters are
    validated, 401 where credentials are required, 403 where a role is, 404 where the
    path names an object."""

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if str(status) not in responses:
                # drf-spectacular leaves this helper unannotated.
                responses[str(status)] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    api_error(status), str(status), direction=direction
                )
        return responses

    def _error_statuses(self) -> list[int]:
        statuses: list[int] = []
        if self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters():
            statuses.append(400)
        auth = self.get_auth()
        if auth and {} not in auth:
            statuses.append(401)
            open_to = (permissions.IsAuthenticated, permissions.AllowAny)
            if any(not isinstance(p, open_to) for p in self.view.get_permissions()):
                statuses.append(403)
        if "{" in self.path:
            statuses.append(404)
        return statuses
