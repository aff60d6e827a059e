"""Schedule the precompute of new high-risk explanations (editable in the admin)."""

from django.db import migrations

from core.beat import entry_remove, interval_entry_create

TASK_NAME = "explain: precompute recent high-risk explanations"


def schedule(apps, schema_editor):
    interval_entry_create(
        apps, name=TASK_NAME, task="explain.tasks.explain_recent", every=5, period="minutes"
    )


def unschedule(apps, schema_editor):
    entry_remove(apps, name=TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("explain", "0002_features"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
