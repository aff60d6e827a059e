"""Requests refused before any view runs."""

from django.http import HttpResponseBadRequest, JsonResponse


class RefuseNulMiddleware:
    """A NUL in the path or the query string gets 400: PostgreSQL cannot take it in a text
    parameter, so a lookup by such an id or filter would otherwise fail as a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in query or "%00" in query:
            message = "the path or the query string contains a NUL character"
            if request.path.startswith("/api/"):
                return JsonResponse({"error": message, "details": {}}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain")
        return self.get_response(request)
