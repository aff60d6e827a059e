"""Monitoring API: alerts, stored drift and performance results, on-demand drift runs.

Reads come from stored per-window results; no endpoint scans the prediction log.
"""

from typing import TYPE_CHECKING

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ApiError, require_perms
from monitoring.alerts import alert_acknowledge, alert_resolve
from monitoring.drift_jobs import drift_run_create
from monitoring.models import Alert, DriftResult, DriftRun, PerformanceResult
from monitoring.selectors import alerts_list, drift_results, performance_results
from registry.models import MLModel, MLModelVersion

if TYPE_CHECKING:
    from django.contrib.auth.models import User

CanView = require_perms("monitoring.view_monitoring")
CanManage = require_perms("monitoring.manage_alert")
CanRun = require_perms("monitoring.run_drift")


class AlertSerializer(serializers.ModelSerializer):
    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    version: serializers.SlugRelatedField[MLModelVersion] = serializers.SlugRelatedField(
        slug_field="version", read_only=True
    )
    acknowledged_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    resolved_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Alert
        fields = [
            "id", "model", "version", "kind", "severity", "status", "dedupe_key", "title",
            "details", "first_seen", "last_seen", "count", "clear_windows", "acknowledged_by",
            "acknowledged_at", "resolved_by", "resolved_at",
        ]  # fmt: skip


class AlertFilter(serializers.Serializer):
    status = serializers.ChoiceField([*Alert.Status.values, "active"], required=False)
    severity = serializers.ChoiceField(Alert.Severity.values, required=False)
    model = serializers.SlugField(required=False)
    kind = serializers.CharField(required=False, max_length=32)


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class WindowFilter(serializers.Serializer):
    version = serializers.CharField(required=False, max_length=32)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    detail = serializers.ChoiceField(["summary", "full"], required=False, default="summary")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"start": "start must be before end"})
        return attrs


SUMMARY_KEYS = ("psi", "ks_statistic", "wasserstein_norm", "js_distance", "chi2", "mean")


def feature_summary(feature: dict) -> dict:
    stats = feature.get("statistics") or {}
    out = {k: feature.get(k) for k in ("status", "n", "p_adjusted", "drifted", "severity")}
    out.update({k: stats[k] for k in SUMMARY_KEYS if k in stats})
    return out


class DriftResultSerializer(serializers.ModelSerializer):
    version: serializers.SlugRelatedField[MLModelVersion] = serializers.SlugRelatedField(
        slug_field="version", read_only=True
    )
    features = serializers.SerializerMethodField()

    class Meta:
        model = DriftResult
        fields = [
            "version", "window_start", "window_end", "n_rows", "status", "drift", "severity",
            "share_drifted", "drifted_features", "score_psi", "score_mean", "score_changes",
            "features", "computed_at",
        ]  # fmt: skip

    def get_features(self, obj) -> dict:
        if self.context.get("detail") == "full":
            return obj.features
        return {name: feature_summary(f) for name, f in obj.features.items()}


class PerformanceResultSerializer(serializers.ModelSerializer):
    version: serializers.SlugRelatedField[MLModelVersion] = serializers.SlugRelatedField(
        slug_field="version", read_only=True
    )

    class Meta:
        model = PerformanceResult
        fields = [
            "version", "window_start", "window_end", "n_predictions", "n_labels", "n_positive",
            "status", "precision", "recall", "f1", "auc", "degraded", "computed_at",
        ]  # fmt: skip


class DriftRunSerializer(serializers.ModelSerializer):
    model: serializers.SlugRelatedField[MLModel] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    requested_by: "serializers.SlugRelatedField[User]" = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    progress = serializers.FloatField(read_only=True)

    class Meta:
        model = DriftRun
        fields = [
            "id", "model", "start", "end", "window_minutes", "trigger", "requested_by", "status",
            "windows_total", "windows_done", "progress", "rows_read", "message", "created_at",
            "started_at", "finished_at", "duration_seconds",
        ]  # fmt: skip


class RunRequestSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


def _valid(serializer_class, data, **kwargs):
    form = serializer_class(data=data, **kwargs)
    form.is_valid(raise_exception=True)
    return form.validated_data


class AlertListView(generics.ListAPIView):
    """Alerts, newest activity first; filter by status (or "active"), model, severity, kind."""

    serializer_class = AlertSerializer
    permission_classes = [CanView]

    @extend_schema(parameters=[AlertFilter])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return alerts_list(**_valid(AlertFilter, self.request.query_params))


class AlertDetailView(generics.RetrieveAPIView):
    serializer_class = AlertSerializer
    permission_classes = [CanView]
    queryset = alerts_list()


class AlertActionView(APIView):
    permission_classes = [CanManage]
    verb = ""

    @extend_schema(request=NoteSerializer, responses=AlertSerializer)
    def post(self, request, pk):
        alert = get_object_or_404(Alert, pk=pk)
        note = _valid(NoteSerializer, request.data)["note"]
        if self.verb == "acknowledge":
            alert = alert_acknowledge(alert=alert, user=request.user)
        else:
            alert = alert_resolve(alert=alert, user=request.user, note=note)
        return Response(AlertSerializer(alert).data)


def _model_and_version(name: str, filters: dict):
    model = get_object_or_404(MLModel, name=name)
    version = None
    if filters.get("version"):
        version = MLModelVersion.objects.filter(model=model, version=filters["version"]).first()
        if version is None:
            raise ApiError(
                f"{name} has no version {filters['version']!r}", {"field": "version"}, 404
            )
    return model, version


class DriftResultsView(generics.ListAPIView):
    """Stored drift results per (version, window), oldest window first."""

    serializer_class = DriftResultSerializer
    permission_classes = [CanView]

    @extend_schema(parameters=[WindowFilter])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def filters(self) -> dict:
        if not hasattr(self, "_filters"):
            self._filters = _valid(WindowFilter, self.request.query_params)
        return self._filters

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "detail": self.filters().get("detail")}

    def get_queryset(self):
        f = self.filters()
        model, version = _model_and_version(self.kwargs["name"], f)
        return drift_results(model=model, version=version, start=f.get("start"), end=f.get("end"))


class PerformanceResultsView(generics.ListAPIView):
    serializer_class = PerformanceResultSerializer
    permission_classes = [CanView]

    @extend_schema(parameters=[OpenApiParameter("version", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        f = _valid(WindowFilter, self.request.query_params)
        model, version = _model_and_version(self.kwargs["name"], f)
        return performance_results(model=model, version=version)


class DriftRunCreateView(APIView):
    """Queue a drift and performance run over [start, end) (default: the last 24 windows)."""

    permission_classes = [CanRun]

    @extend_schema(request=RunRequestSerializer, responses={202: DriftRunSerializer})
    def post(self, request, name):
        model = get_object_or_404(MLModel, name=name)
        data = _valid(RunRequestSerializer, request.data)
        run = drift_run_create(
            model=model,
            start=data.get("start"),
            end=data.get("end"),
            trigger=DriftRun.Trigger.API,
            user=request.user,
        )
        return Response(DriftRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class DriftRunDetailView(generics.RetrieveAPIView):
    serializer_class = DriftRunSerializer
    permission_classes = [CanView]
    queryset = DriftRun.objects.select_related("model", "requested_by")


urlpatterns = [
    path("alerts/", AlertListView.as_view(), name="api-alerts"),
    path("alerts/<int:pk>/", AlertDetailView.as_view(), name="api-alert"),
    path(
        "alerts/<int:pk>/acknowledge/",
        AlertActionView.as_view(verb="acknowledge"),
        name="api-alert-acknowledge",
    ),
    path(
        "alerts/<int:pk>/resolve/",
        AlertActionView.as_view(verb="resolve"),
        name="api-alert-resolve",
    ),
    path("models/<slug:name>/drift/", DriftResultsView.as_view(), name="api-drift"),
    path("models/<slug:name>/drift/run/", DriftRunCreateView.as_view(), name="api-drift-run"),
    path(
        "models/<slug:name>/performance/",
        PerformanceResultsView.as_view(),
        name="api-performance",
    ),
    path("drift-runs/<int:pk>/", DriftRunDetailView.as_view(), name="api-drift-run-detail"),
]
