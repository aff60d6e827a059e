"""Page helpers every app's views use: the permission guard and posted-text reader."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from core.audit import audit_permission_denied

View = Callable[..., HttpResponseBase]


def perm_required(*perms: str) -> Callable[[View], View]:
    """Page guard: anonymous users go to the login page, users without `perms` get 403."""

    def decorator(view: View) -> View:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.has_perms(perms):
                audit_permission_denied(request, perms)
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def form_text(request: HttpRequest, name: str, limit: int) -> str:
    """A posted text field cut to `limit` characters; a NUL (which the database cannot
    store) is refused with 400 instead of failing the write."""
    value = request.POST.get(name, "")
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain NUL characters")
    return value.strip()[:limit]
