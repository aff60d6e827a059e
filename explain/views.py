from django.shortcuts import render
from django.views.decorators.http import require_GET

from govsite.views import perm_required
from monitoring.models import PredictionLog


@require_GET
@perm_required("explain.view_explanations")
def index(request):
    incidents = (
        PredictionLog.objects.exclude(incident_id="")
        .select_related("version__model")
        .order_by("-score")[:50]
    )
    return render(request, "explain/index.html", {"incidents": incidents})
