"""Project-level pages: home, health check, and the permission decorator views use."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found


def perm_required(*perms: str):
    """Page guard: anonymous users go to the login page, users without `perms` get 403."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not request.user.has_perms(perms):
                from registry.audit import audit_permission_denied

                audit_permission_denied(request, perms)
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.required_perms = perms
        return wrapped

    return decorator


def form_text(request, name: str, limit: int) -> str:
    """A posted text field cut to `limit` characters; a NUL (which the database cannot
    store) is refused with 400 instead of failing the write."""
    value = request.POST.get(name, "")
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain NUL characters")
    return value.strip()[:limit]


@require_GET
def home(request):
    context = {}
    if request.user.is_authenticated:
        from registry.selectors import home_summary

        context = home_summary(user=request.user)
    return render(request, "home.html", context)


def not_found(request, exception):
    """404 for unknown paths: under /api/ with the API's JSON error body, else the page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "Not found.", "details": {}}, status=404)
    return page_not_found(request, exception)


@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
