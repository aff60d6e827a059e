"""Fairness pages: audits per model and version, one audit with its chart, the compliance report."""

import csv
import json

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.audit import audit_record
from core.csv_safe import csv_row
from core.views import perm_required
from fairness import selectors
from fairness.exports import report_rows
from fairness.forms import RunAuditForm
from fairness.services import AuditInputError, fairness_audit_check_data, fairness_audit_create
from registry.models import MLModel, MLModelVersion

VIEW = "fairness.view_fairness"
RUN = "fairness.run_audit"


def _version(pk: int) -> MLModelVersion:
    return get_object_or_404(MLModelVersion.objects.select_related("model"), pk=pk)


@require_GET
@perm_required(VIEW)
def index(request):
    return render(
        request,
        "fairness/index.html",
        {"models": selectors.models_overview(), "audits": selectors.audits()[:25]},
    )


@require_GET
@perm_required(VIEW)
def model_audits(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    overview = [m for m in selectors.models_overview() if m.pk == model.pk][0]
    return render(
        request,
        "fairness/model.html",
        {"model": overview, "audits": selectors.audits(model=model)},
    )


def _render_version(request, version, form, status=200):
    return render(
        request,
        "fairness/version.html",
        {
            "version": version,
            "audits": selectors.audits(version=version),
            "form": form,
            "can_run": request.user.has_perm(RUN),
        },
        status=status,
    )


@require_GET
@perm_required(VIEW)
def version_audits(request, pk: int):
    version = _version(pk)
    form = RunAuditForm(initial={"source": "evaluation", "attributes": "geo_region"})
    return _render_version(request, version, form)


@require_POST
@perm_required(VIEW, RUN)
def audit_run(request, pk: int):
    version = _version(pk)
    form = RunAuditForm(request.POST)
    if not form.is_valid():
        return _render_version(request, version, form, status=400)
    params = form.audit_params()
    try:
        fairness_audit_check_data(version=version, **params)
        audit = fairness_audit_create(version=version, requested_by=request.user, **params)
    except AuditInputError as exc:
        form.add_error(None, exc.message)
        return _render_version(request, version, form, status=400)
    messages.success(request, f"Audit #{audit.pk} queued; this page follows its progress.")
    return redirect("fairness:audit", pk=audit.pk)


@require_GET
@perm_required(VIEW)
def audit_detail(request, pk: int):
    audit = get_object_or_404(selectors.audits(), pk=pk)
    return render(
        request,
        "fairness/audit.html",
        {
            "audit": audit,
            "version": audit.version,
            "chart": selectors.chart_data(audit) if audit.groups else None,
            "four_fifths": selectors.four_fifths_rows(audit),
            "aggregates": audit.result.get("aggregates", {}),
        },
    )


@require_GET
@perm_required(VIEW)
def version_report(request, pk: int):
    version = _version(pk)
    report = selectors.compliance_report(version=version, user=request.user)
    audits = list(selectors.audits(version=version))
    for audit in audits:
        audit.ff_rows = selectors.four_fifths_rows(audit)
    return render(
        request,
        "fairness/report.html",
        {"version": version, "report": report, "audits": audits},
    )


@require_GET
@perm_required(VIEW)
def version_report_export(request, pk: int, fmt: str):
    version = _version(pk)
    report = selectors.compliance_report(version=version, user=request.user)
    audit_record(
        action="fairness.report_exported",
        actor=request.user,
        obj=version,
        model_name=version.model.name,
        payload={"version": version.version, "format": fmt},
    )
    filename = f"compliance-{version.model.name}-{version.version}.{fmt}"
    if fmt == "json":
        response = HttpResponse(
            json.dumps(report, indent=1, allow_nan=False), content_type="application/json"
        )
    else:
        response = HttpResponse(content_type="text/csv")
        writer = csv.writer(response)
        writer.writerow(["section", "item", "field", "value", "ci_low", "ci_high"])
        writer.writerows(csv_row(row) for row in report_rows(report))
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
