from django.shortcuts import render
from django.views.decorators.http import require_GET

from fairness.models import FairnessAudit
from govsite.views import perm_required


@require_GET
@perm_required("fairness.view_fairness")
def index(request):
    audits = FairnessAudit.objects.select_related("version__model")[:100]
    return render(request, "fairness/index.html", {"audits": audits})
