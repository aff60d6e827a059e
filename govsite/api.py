"""API plumbing shared by every app: error shape, permission classes."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, permissions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """An error with a stable message and structured details (field, row, reason)."""

    status_code = 400
    default_detail = "Invalid request."

    def __init__(self, message: str, details: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status_code = status


def _flatten_message(detail) -> str:
    if isinstance(detail, dict):
        return "Invalid input."
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail) or "Invalid input."
    return str(detail)


def exception_handler(exc, context):
    """Render every API error as {"error": "...", "details": {...}}."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.PermissionDenied):
        _audit_denial(context)
    if isinstance(exc, ApiError):
        body = {"error": exc.message, "details": exc.details}
    elif isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"error": "Invalid input.", "details": details}
    else:
        body = {"error": _flatten_message(exc.detail), "details": {}}
    return Response(body, status=response.status_code, headers=_auth_headers(response))


def _audit_denial(context) -> None:
    request, view = context.get("request"), context.get("view")
    if request is None or not request.user.is_authenticated:
        return
    from registry.audit import audit_permission_denied

    required = []
    for perm_class in getattr(view, "permission_classes", []):
        required.extend(getattr(perm_class, "required", ()))
    audit_permission_denied(request, required)


def _auth_headers(response) -> dict:
    headers = {}
    for name in ("WWW-Authenticate", "Retry-After"):
        if name in response:
            headers[name] = response[name]
    return headers


def require_perms(*perms: str) -> type[permissions.BasePermission]:
    """A DRF permission class admitting authenticated users holding all `perms`."""

    class HasPerms(permissions.BasePermission):
        required = perms
        message = "Your role does not allow this action."

        def has_permission(self, request, view):
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(self.required))

    HasPerms.__name__ = "Has_" + "_".join(p.split(".")[-1] for p in perms)
    return HasPerms
