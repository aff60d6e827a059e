"""API plumbing shared by every app: error shape, permission classes."""

import io
import json
import math
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NoReturn

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, parsers, permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.audit import audit_permission_denied
from core.errors import DomainError

if TYPE_CHECKING:
    # Type-only: DRF's views module imports this one (DEFAULT_PARSER_CLASSES) while it
    # defines APIView, so importing APIView here at run time is circular.
    from rest_framework.views import APIView


class ApiError(exceptions.APIException):
    """An error with a stable message and structured details (field, row, reason)."""

    status_code = 400
    default_detail = "Invalid request."

    def __init__(
        self, message: str, details: dict[str, Any] | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status_code = status


def _flatten_message(detail: object) -> str:
    if isinstance(detail, dict):
        return "Invalid input."
    if isinstance(detail, list):
        return "; ".join(str(item) for item in detail) or "Invalid input."
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error as {"error": "...", "details": {...}}.

    A service's DomainError is mapped here, once, with its message, details and status
    (DRF's own handler knows only its APIException); API views do not catch them."""
    if isinstance(exc, DomainError):
        exc = ApiError(exc.message, exc.details, status=exc.status)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # Django's multipart parser, past the limit
        exc = BodyTooLarge()
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        exc = exceptions.ParseError(f"too many fields or files in the form: {exc}")
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # None: not an API error, DRF lets it through as a 500
    if isinstance(exc, exceptions.PermissionDenied):
        _audit_denial(context)
    if isinstance(exc, ApiError):
        body = {"error": exc.message, "details": exc.details}
    elif isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"error": "Invalid input.", "details": details}
    else:
        body = {"error": _flatten_message(exc.detail), "details": {}}
    return Response(_encodable(body), status=response.status_code, headers=_auth_headers(response))


def _encodable(value: object) -> object:
    """Error details echo the input; an unpaired surrogate in it (JSON lets "\\ud800"
    through) would make the UTF-8 answer itself fail, so it is shown escaped."""
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    if isinstance(value, str):
        return str(value).encode("utf-8", "backslashreplace").decode()
    return value


def has_unstorable_text(value: object) -> bool:
    """Whether a parsed JSON value holds text the database cannot store: a NUL or an
    unpaired surrogate, in a key or a string."""
    if isinstance(value, dict):
        return any(has_unstorable_text(k) or has_unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(has_unstorable_text, value))
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return "\x00" in value
    return False


class BodyTooLarge(exceptions.APIException):
    status_code = 413

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(
            f"the request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)"
        )


def read_limited(stream: IO[Any] | None, parser_context: Mapping[str, Any] | None) -> bytes:
    """The body, refused with 413 past DATA_UPLOAD_MAX_MEMORY_SIZE before it is read
    (DRF's parsers read the stream whole, past Django's own check of that limit)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = (parser_context or {}).get("request")
    meta = request.META if request is not None else {}
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if limit is not None and declared > limit:
        raise BodyTooLarge()
    body = stream.read(limit + 1 if limit is not None else -1) if stream is not None else b""
    if limit is not None and len(body) > limit:
        raise BodyTooLarge()
    return body


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:64]!r} in an object")
            seen.add(key)
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def json_loads_strict(text: str | bytes, *, finite: bool = True) -> Any:
    """json.loads that refuses what the API never means: NaN and Infinity, numbers beyond
    float range (1e999), duplicate keys, and nesting past the interpreter's recursion
    limit (a RecursionError that would otherwise be a 500). Raises ValueError.
    finite=False lets 1e999 through as inf, for callers that name the field it is in."""
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite if finite else float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


class JSONParser(parsers.JSONParser):
    """JSON bodies within the upload limit, parsed by `json_loads_strict`."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = read_limited(stream, parser_context)
        encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
        try:
            return json_loads_strict(body.decode(encoding))
        except ValueError as exc:  # UnicodeDecodeError included
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


class FormParser(parsers.FormParser):
    """Form bodies within the upload limit (DRF's reads the stream whole)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = read_limited(stream, parser_context)
        return super().parse(io.BytesIO(body), media_type, parser_context)


def _audit_denial(context: Mapping[str, Any]) -> None:
    request, view = context.get("request"), context.get("view")
    if request is None or not request.user.is_authenticated:
        return

    required: list[str] = []
    for perm_class in getattr(view, "permission_classes", []):
        required.extend(getattr(perm_class, "required", ()))
    audit_permission_denied(request, required)


def _auth_headers(response: Response) -> dict[str, str]:
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

        def has_permission(self, request: Request, view: "APIView") -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(self.required))

    HasPerms.__name__ = "Has_" + "_".join(p.split(".")[-1] for p in perms)
    return HasPerms


def require_any_perm(*perms: str) -> type[permissions.BasePermission]:
    """A DRF permission class admitting authenticated users holding at least one of `perms`
    (for endpoints whose exact permission depends on the request body: the roles that
    hold none of them are refused before the body is read)."""

    class HasAnyPerm(permissions.BasePermission):
        required = perms
        message = "Your role does not allow this action."

        def has_permission(self, request: Request, view: "APIView") -> bool:
            user = request.user
            return bool(user and user.is_authenticated and any(map(user.has_perm, perms)))

    HasAnyPerm.__name__ = "HasAny_" + "_".join(p.split(".")[-1] for p in perms)
    return HasAnyPerm
