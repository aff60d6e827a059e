"""Admin for alerts (acknowledge / resolve actions) and read-only drift results and runs."""

from django.contrib import admin, messages

from core.admin import ReadOnlyAdminMixin
from monitoring.alerts import alert_acknowledge, alert_resolve
from monitoring.models import Alert, DetectorState, DriftResult, DriftRun, PerformanceResult
from registry.services import GovernanceError

VIEW = "monitoring.view_monitoring"


class MonitoringReadOnly(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Results are written by jobs only; people with the monitoring view may read them."""

    def has_module_permission(self, request):
        return request.user.has_perm(VIEW)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW)


@admin.register(Alert)
class AlertAdmin(MonitoringReadOnly):
    list_display = ["title", "model", "version", "kind", "severity", "status", "count"]
    list_display += ["first_seen", "last_seen", "acknowledged_by", "resolved_by"]
    list_filter = ["status", "severity", "kind", "model"]
    search_fields = ["title", "dedupe_key"]
    date_hierarchy = "last_seen"
    actions = ["acknowledge", "resolve"]

    def has_manage_alert_permission(self, request):
        return request.user.has_perm("monitoring.manage_alert")

    def _apply(self, request, queryset, service, verb: str):
        done = 0
        for alert in queryset.select_related("model"):
            try:
                service(alert=alert, user=request.user)
                done += 1
            except GovernanceError as exc:
                self.message_user(request, f"{alert}: {exc.message}", messages.WARNING)
                continue
            self.log_change(request, alert, f"{verb} alert")
        self.message_user(request, f"{done} alert(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Acknowledge selected alerts", permissions=["manage_alert"])
    def acknowledge(self, request, queryset):
        self._apply(request, queryset, alert_acknowledge, "acknowledged")

    @admin.action(description="Resolve selected alerts", permissions=["manage_alert"])
    def resolve(self, request, queryset):
        self._apply(request, queryset, alert_resolve, "resolved")


@admin.register(DriftResult)
class DriftResultAdmin(MonitoringReadOnly):
    list_display = ["version", "window_start", "n_rows", "status", "drift", "severity"]
    list_display += ["share_drifted", "score_psi"]
    list_filter = ["status", "drift", "version__model"]
    date_hierarchy = "window_start"


@admin.register(PerformanceResult)
class PerformanceResultAdmin(MonitoringReadOnly):
    list_display = ["version", "window_end", "n_labels", "status", "precision", "recall"]
    list_display += ["f1", "auc"]
    list_filter = ["status", "version__model"]


@admin.register(DriftRun)
class DriftRunAdmin(MonitoringReadOnly):
    list_display = ["pk", "model", "trigger", "status", "start", "end", "windows_done"]
    list_display += ["windows_total", "rows_read", "duration_seconds", "requested_by"]
    list_filter = ["status", "trigger", "model"]


@admin.register(DetectorState)
class DetectorStateAdmin(MonitoringReadOnly):
    list_display = ["version", "cursor_time", "changes", "last_change_at", "updated_at"]
