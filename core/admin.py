"""Admin for the records every app writes: read-only, since they are append-only or
the outbox's own state."""

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from core.models import AuditEvent, Notification, TaskDelivery

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Model]
else:  # ModelAdmin takes no type argument at run time
    _ModelAdmin = admin.ModelAdmin


class ReadOnlyAdminMixin:
    """Records written elsewhere (append-only, decided, or kept by jobs): never added,
    changed or deleted through the admin. Put it before the admin base class (a
    ``ModelAdmin`` or an inline); who may view them stays the admin's own choice."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyAdminMixin, _ModelAdmin):
    """Read-only, with every model field shown as such (plus the admin's own
    ``readonly_fields``, computed ones included)."""

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        names = [f.name for f in self.model._meta.fields]
        return names + [n for n in super().get_readonly_fields(request, obj) if n not in names]


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


@admin.register(TaskDelivery)
class TaskDeliveryAdmin(ReadOnlyAdmin):
    """Task bodies that died with their worker, and those quarantined for it
    (core.quarantine). Released with ``manage.py task_quarantine --release``."""

    list_display = ["task", "label", "attempts", "quarantined_at", "last_seen"]
    list_filter = ["task", ("quarantined_at", admin.EmptyFieldListFilter)]
    search_fields = ["key", "label"]
