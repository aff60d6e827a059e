"""The audit trail and the notification outbox now belong to core (state only: the
tables and their rows stay; see core/migrations/0001_initial.py)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0006_notifications_requeue_schedule"),
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="AuditChainHead"),
                migrations.DeleteModel(name="Notification"),
            ],
            database_operations=[],
        )
    ]
