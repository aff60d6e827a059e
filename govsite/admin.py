"""The user admin, kept in step with the audit trail.

A user named in the trail is never deleted: the trail's foreign key is PROTECT, and
this admin says so on the delete page (and in the bulk action) instead of listing every
event, pointing to deactivation. The refusal, every deletion and every change of a
user's Active flag are audited.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count

from core.audit import audit_record
from core.models import AuditEvent

User = get_user_model()


def _in_trail(users) -> dict[int, int]:
    """User id -> number of audit events naming the user as the actor."""
    ids = [user.pk for user in users]
    rows = (
        AuditEvent.objects.filter(actor_id__in=ids)
        .values("actor_id")
        .annotate(n=Count("id"))
        .values_list("actor_id", "n")
    )
    return dict(rows)


class UserAdmin(DjangoUserAdmin):
    def get_deleted_objects(self, objs, request):
        users = list(objs)
        named = _in_trail(users)
        if not named:
            return super().get_deleted_objects(users, request)
        protected = []
        for user in users:
            if user.pk not in named:
                continue
            audit_record(
                action="user.delete_refused",
                actor=request.user,
                obj=user,
                payload={"username": user.username, "audit_events": named[user.pk]},
            )
            protected.append(
                f"{user.username}: named in {named[user.pk]} audit events. A user in the "
                "audit trail cannot be deleted; deactivate the account instead (untick "
                "“Active” on the user's page)."
            )
        return [], {}, set(), protected

    def delete_model(self, request, obj):
        audit_record(
            action="user.deleted", actor=request.user, obj=obj, payload={"username": obj.username}
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            audit_record(
                action="user.deleted",
                actor=request.user,
                obj=user,
                payload={"username": user.username},
            )
        super().delete_queryset(request, queryset)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data:
            audit_record(
                action="user.activated" if obj.is_active else "user.deactivated",
                actor=request.user,
                obj=obj,
                payload={"username": obj.username},
            )


admin.site.unregister(User)
admin.site.register(User, UserAdmin)
