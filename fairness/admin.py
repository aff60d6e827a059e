"""Fairness audits in the admin: read-only records (audits are evidence and never edited;
they are created through the service, from the UI, the API or a command, which enqueues
them)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from fairness.models import FairnessAudit


@admin.register(FairnessAudit)
class FairnessAuditAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "version",
        "source",
        "trigger",
        "status",
        "verdict",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "verdict", "source", "trigger", "version__model"]
    search_fields = ["version__model__name", "version__version"]
    readonly_fields = ["page_link"]  # with every field (ReadOnlyAdmin)
    list_select_related = ["version__model"]

    @admin.display(description="Audit page")
    def page_link(self, obj):
        url = reverse("fairness:audit", args=[obj.pk])
        return format_html('<a href="{}">Open the audit page</a>', url)

    def has_view_permission(self, request, obj=None):
        # The role permission that opens the fairness pages opens this read-only view too.
        return request.user.has_perm("fairness.view_fairness") or super().has_view_permission(
            request, obj
        )
