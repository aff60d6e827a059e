"""Beat entry that keeps one drift schedule per model (monitoring.schedules)."""

from django.db import migrations

from core.beat import entry_remove, interval_entry_create

NAME = "monitoring: drift schedules sync"
TASK = "monitoring.tasks.drift_schedules_sync_task"


def create(apps, schema_editor):
    interval_entry_create(
        apps,
        name=NAME,
        task=TASK,
        every=10,
        period="minutes",
        description="Create or update the per-model drift schedules (one per model).",
    )


def remove(apps, schema_editor):
    entry_remove(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_drift_results"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
