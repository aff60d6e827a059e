"""Admin for the records every app writes: read-only, since they are append-only or
the outbox's own state."""

from django.contrib import admin

from core.models import AuditEvent, Notification


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only or decided records: visible, never added, changed or deleted here."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "model_name",
    ]
    list_filter = ["action", "model_name"]
    search_fields = ["actor_label", "action", "object_id"]


@admin.register(Notification)
class NotificationAdmin(AuditEventAdmin):
    list_display = ["created_at", "event", "subject", "status", "attempts", "sent_at"]
    list_filter = ["status", "event"]
    search_fields = ["subject"]
