"""Project-level pages: home, health check and the 404 handler."""

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found

from registry.selectors import home_summary


@require_GET
def home(request):
    context = {}
    if request.user.is_authenticated:
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
