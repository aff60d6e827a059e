"""Registry pages: versions overview, version detail (model card), audit trail and export."""

import csv
import json
from datetime import datetime, time, timedelta

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET

from core.audit import audit_record, audit_verify
from core.csv_safe import csv_cell
from core.views import perm_required
from registry.models import MLModel
from registry.selectors import audit_events, version_list


@require_GET
@perm_required("registry.view_mlmodelversion")
def index(request):
    versions = version_list()
    return render(
        request,
        "registry/index.html",
        {"models": MLModel.objects.all(), "versions": versions},
    )


@require_GET
@perm_required("registry.view_mlmodelversion")
def version_detail(request, pk: int):
    version = get_object_or_404(version_list(), pk=pk)
    requests = version.approval_requests.select_related("requested_by").prefetch_related(
        "decisions__approver"
    )
    return render(
        request,
        "registry/version.html",
        {"version": version, "approval_requests": requests},
    )


def _date(raw: str):
    try:
        return parse_date(raw)
    except ValueError:  # well formed but impossible (2026-02-30): ignored like malformed
        return None


def _period(request):
    start = _date(request.GET.get("start", "") or "")
    end = _date(request.GET.get("end", "") or "")
    tz = timezone.get_current_timezone()
    start_dt = datetime.combine(start, time.min, tz) if start else None
    end_dt = datetime.combine(end, time.max, tz) if end else None
    return start_dt, end_dt


# The nightly full verification is overdue after a day and a margin.
FULL_VERIFY_OVERDUE = timedelta(hours=26)


@require_GET
@perm_required("core.view_auditevent")
def audit_trail(request):
    start, end = _period(request)
    events = audit_events(start=start, end=end, model_name=request.GET.get("model", ""))
    page = Paginator(events.order_by("-id"), 50).get_page(request.GET.get("page"))
    # From the newest checkpoint (cost: the events since it), unless asked for the whole
    # chain; the nightly full verification signs a checkpoint marked "full".
    chain = audit_verify(full=request.GET.get("verify") == "full")
    last_full = chain.last_full.when if chain.last_full is not None else None
    full_overdue = last_full is None or timezone.now() - last_full > FULL_VERIFY_OVERDUE
    return render(
        request,
        "registry/audit.html",
        {
            "page": page,
            "chain": chain,
            "last_full": last_full,
            "full_overdue": full_overdue,
            "filters": request.GET,
        },
    )


EXPORT_FIELDS = [
    "id",
    "created_at",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "model_name",
    "payload",
    "prev_hash",
    "row_hash",
]


@require_GET
@perm_required("core.export_audit")
def audit_export(request):
    start, end = _period(request)
    events = audit_events(start=start, end=end, model_name=request.GET.get("model", ""))
    fmt = request.GET.get("format", "csv")
    audit_record(
        action="audit.exported",
        actor=request.user,
        payload={"format": fmt, "start": str(start), "end": str(end)},
    )
    rows = (
        {
            f: (getattr(e, f).isoformat() if f == "created_at" else getattr(e, f))
            for f in EXPORT_FIELDS
        }
        for e in events.iterator()
    )
    if fmt == "json":
        response = HttpResponse(json.dumps(list(rows), indent=1), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.json"'
        return response
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
    writer = csv.DictWriter(response, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        row["payload"] = json.dumps(row["payload"], sort_keys=True)
        writer.writerow({key: csv_cell(value) for key, value in row.items()})
    return response
