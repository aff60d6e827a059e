"""Beat entry that enqueues again drift runs left queued or with a lapsed lease."""

from django.db import migrations

from core.beat import entry_remove, interval_entry_create

NAME = "monitoring: requeue pending drift runs"
TASK = "monitoring.tasks.drift_runs_requeue"


def create(apps, schema_editor):
    interval_entry_create(
        apps,
        name=NAME,
        task=TASK,
        every=1,
        period="minutes",
        description="Enqueue drift runs whose first enqueue met a broker that was down, "
        "or whose worker died (docs/faults.md).",
    )


def remove(apps, schema_editor):
    entry_remove(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0007_driftrun_lease"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
