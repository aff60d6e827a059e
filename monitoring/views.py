from django.shortcuts import render
from django.views.decorators.http import require_GET

from govsite.views import perm_required
from monitoring.models import Alert
from registry.models import MLModel


@require_GET
@perm_required("monitoring.view_monitoring")
def index(request):
    return render(
        request,
        "monitoring/index.html",
        {
            "models": MLModel.objects.all(),
            "alerts": Alert.objects.exclude(status=Alert.Status.RESOLVED).select_related("model")[
                :50
            ],
        },
    )
