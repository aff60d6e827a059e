"""Fairness API: request an audit (202, a worker runs it) and read one."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response

from core.api import ApiError, require_perms
from fairness.models import FairnessAudit
from fairness.serializers import AuditRequestSerializer, FairnessAuditSerializer
from fairness.services import fairness_audit_check_data, fairness_audit_create
from registry.models import MLModelVersion

CanView = require_perms("fairness.view_fairness")
CanRun = require_perms("fairness.run_audit")


def _audits():
    return FairnessAudit.objects.select_related("version__model", "requested_by")


class AuditListView(generics.ListCreateAPIView):
    """Audits, newest first (filter with ?version=ID); POST queues a new audit."""

    serializer_class = FairnessAuditSerializer

    def get_permissions(self):
        return [CanRun() if self.request.method == "POST" else CanView()]

    @extend_schema(parameters=[OpenApiParameter("version", int, description="a version id")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        qs = _audits()
        version = self.request.query_params.get("version")
        if version is not None:
            if not (version.isascii() and version.isdigit()) or int(version) >= 2**63:
                raise ApiError("version must be a version id", {"field": "version"})
            qs = qs.filter(version_id=int(version))
        return qs

    @extend_schema(request=AuditRequestSerializer, responses={202: FairnessAuditSerializer})
    def post(self, request):
        form = AuditRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        version = MLModelVersion.objects.select_related("model").filter(pk=data["version"]).first()
        if version is None:
            raise ApiError(f"version {data['version']} does not exist", {"field": "version"})
        params = {
            "version": version,
            "source": data["source"],
            "attributes": data["attributes"],
            "period_start": data.get("period_start"),
            "period_end": data.get("period_end"),
        }
        fairness_audit_check_data(**params)
        audit = fairness_audit_create(**params, requested_by=request.user)
        return Response(FairnessAuditSerializer(audit).data, status=status.HTTP_202_ACCEPTED)


class AuditDetailView(generics.RetrieveAPIView):
    serializer_class = FairnessAuditSerializer
    permission_classes = [CanView]
    queryset = _audits()
