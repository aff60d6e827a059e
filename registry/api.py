"""Registry API: reads, registration and the governance workflow."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, require_any_perm, require_perms
from core.audit import audit_permission_denied
from core.schema import api_error
from registry import services
from registry.models import ApprovalRequest, MLModel, MLModelVersion
from registry.routing import route_table
from registry.selectors import version_list
from registry.serializers import (
    ApprovalRequestSerializer,
    MeSerializer,
    MLModelSerializer,
    MLModelVersionDetailSerializer,
    MLModelVersionSerializer,
    NotesSerializer,
    RegisterVersionSerializer,
    RouteSerializer,
    TrafficConfigSerializer,
    TrafficSetSerializer,
    TransitionSerializer,
)
from registry.traffic import ExperimentPlan, traffic_config, traffic_set

CanViewRegistry = require_perms("registry.view_mlmodelversion")


class MeView(APIView):
    """Who the caller is and which roles it holds."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        roles = [g.name for g in request.user.groups.all()]
        return Response({"username": request.user.username, "roles": roles})


class ModelListView(generics.ListAPIView):
    serializer_class = MLModelSerializer
    permission_classes = [CanViewRegistry]
    queryset = MLModel.objects.all()


class VersionListView(generics.ListCreateAPIView):
    """List a model's versions; POST registers a new version (multipart)."""

    serializer_class = MLModelVersionSerializer
    parser_classes = [MultiPartParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [require_perms("registry.register_version")()]
        return [CanViewRegistry()]

    def get_queryset(self):
        model = get_object_or_404(MLModel, name=self.kwargs["name"])
        return version_list(model=model)

    @extend_schema(
        request=RegisterVersionSerializer,
        responses={201: MLModelVersionSerializer, 409: api_error(409, "already registered")},
    )
    def post(self, request, name):
        form = RegisterVersionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        evaluation = data.get("evaluation")
        version = services.model_version_register(
            model_name=name,
            version=data["version"],
            artifact=data["artifact"].read(),
            metadata=data["metadata"],
            evaluation=evaluation.read() if evaluation else None,
            registered_by=request.user,
            description=data.get("description", ""),
        )
        return Response(MLModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(generics.RetrieveAPIView):
    serializer_class = MLModelVersionDetailSerializer
    permission_classes = [CanViewRegistry]
    queryset = version_list()


class RequestApprovalView(APIView):
    permission_classes = [require_perms("registry.request_approval")]

    @extend_schema(
        request=NotesSerializer, responses={201: ApprovalRequestSerializer, 409: api_error(409)}
    )
    def post(self, request, pk):
        version = get_object_or_404(MLModelVersion, pk=pk)
        form = NotesSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        approval = services.approval_request_create(
            version=version, actor=request.user, notes=form.validated_data["notes"]
        )
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_201_CREATED)


class DecideView(APIView):
    permission_classes = [require_perms("registry.approve_version")]
    decision = ""

    @extend_schema(
        request=NotesSerializer, responses={200: ApprovalRequestSerializer, 409: api_error(409)}
    )
    def post(self, request, pk):
        version = get_object_or_404(MLModelVersion, pk=pk)
        form = NotesSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        pending = version.approval_requests.filter(status=ApprovalRequest.Status.PENDING).first()
        if pending is None:
            raise ApiError(f"{version} has no pending approval request", status=409)
        approval = services.approval_decide(
            request=pending,
            approver=request.user,
            decision=self.decision,
            notes=form.validated_data["notes"],
        )
        approval.refresh_from_db()
        return Response(ApprovalRequestSerializer(approval).data)


class ApproveView(DecideView):
    decision = "approve"


class RejectView(DecideView):
    decision = "reject"


class TransitionView(APIView):
    """Move a version along the lifecycle. Production and archive need the Approver role."""

    permission_classes = [require_any_perm("registry.register_version", "registry.promote_version")]

    @extend_schema(
        request=TransitionSerializer,
        responses={200: MLModelVersionSerializer, 409: api_error(409)},
    )
    def post(self, request, pk):
        version = get_object_or_404(MLModelVersion, pk=pk)
        form = TransitionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        to = form.validated_data["to"]
        needed = (
            "registry.promote_version"
            if to in (MLModelVersion.Status.PRODUCTION, MLModelVersion.Status.ARCHIVED)
            or version.status == MLModelVersion.Status.PRODUCTION
            else "registry.register_version"
        )
        if not request.user.has_perm(needed):
            self.permission_denied(request, message=f"moving a version to {to} needs {needed}")
        version = services.version_transition(
            version=version, to=to, actor=request.user, notes=form.validated_data["notes"]
        )
        return Response(MLModelVersionSerializer(version).data)


class RollbackView(APIView):
    permission_classes = [require_perms("registry.promote_version")]

    @extend_schema(
        request=NotesSerializer, responses={200: MLModelVersionSerializer, 409: api_error(409)}
    )
    def post(self, request, name):
        model = get_object_or_404(MLModel, name=name)
        form = NotesSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        version = services.version_rollback(
            model=model, actor=request.user, notes=form.validated_data["notes"]
        )
        return Response(MLModelVersionSerializer(version).data)


# --- A/B traffic -------------------------------------------------------------------


def _model_version(model: MLModel, semver: str, field: str) -> MLModelVersion:
    version = model.versions.filter(version=semver).first()
    if version is None:
        raise ApiError(f"{model.name} has no version {semver}", {"field": field, "version": semver})
    return version


class TrafficView(APIView):
    """The published routing config (GET, with ETag) and the Approver's split change (PUT)."""

    def get_permissions(self):
        if self.request.method == "PUT":
            return [require_perms("registry.set_traffic")()]
        return [CanViewRegistry()]

    @extend_schema(responses={200: TrafficConfigSerializer, 304: None})
    def get(self, request, name):
        model = get_object_or_404(MLModel, name=name)
        config, etag = traffic_config(model=model)
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(config, headers={"ETag": etag, "Cache-Control": "private, no-cache"})

    @extend_schema(
        request=TrafficSetSerializer,
        responses={200: TrafficConfigSerializer, 409: api_error(409), 412: api_error(412)},
    )
    def put(self, request, name):
        model = get_object_or_404(MLModel, name=name)
        form = TrafficSetSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        challenger = data["challenger"] and _model_version(model, data["challenger"], "challenger")
        shadows = [
            _model_version(model, semver, f"shadows[{i}]")
            for i, semver in enumerate(data["shadows"])
        ]
        plan = ExperimentPlan(
            hypothesis=data["hypothesis"],
            primary_metric=data["primary_metric"],
            minimum_sample_size=data["minimum_sample_size"],
            alpha=data["alpha"],
        )
        traffic_set(
            model=model,
            challenger=challenger or None,
            challenger_bp=data["challenger_bp"],
            shadows=shadows,
            actor=request.user,
            notes=data["notes"],
            plan=plan,
            expected_revision=data.get("revision"),
        )
        config, etag = traffic_config(model=model)
        return Response(config, headers={"ETag": etag})


class RouteView(APIView):
    """Which version serves an entity (sticky), its arm, and the shadow versions.

    The role (registry.view_mlmodelversion) is checked in the same query that reads the
    split: this endpoint sits on the SOC backend's request path.
    """

    required_perm = "registry.view_mlmodelversion"

    @extend_schema(
        parameters=[OpenApiParameter("entity", str, required=True, description="1-256 chars")],
        responses={
            200: RouteSerializer,
            403: api_error(403),
            409: api_error(409, "No version of the model serves traffic."),
        },
    )
    def get(self, request, name):
        table, allowed = route_table(model_name=name, user=request.user)
        if not allowed:
            audit_permission_denied(request, [self.required_perm])
            raise ApiError("Your role does not allow this action.", status=403)
        if table is None:
            raise ApiError(f"no model named {name}", {"model": name}, status=404)
        entity = request.query_params.get("entity", "")
        if not entity or len(entity) > 256:
            raise ApiError("entity is required (1 to 256 characters)", {"field": "entity"})
        version, arm = table.decide(entity)  # NoServingVersion answers 409
        return Response(
            {
                "model": name,
                "entity": entity,
                "version": version.version,
                "version_id": version.id,
                "arm": arm,
                "shadows": [{"version": s.version, "id": s.id} for s in table.shadows],
            }
        )
