"""Beat entry that enqueues again drift runs left queued or with a lapsed lease."""

from django.db import migrations

NAME = "monitoring: requeue pending drift runs"
TASK = "monitoring.tasks.drift_runs_requeue"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": TASK,
            "interval": every,
            "args": "[]",
            "kwargs": "{}",
            "description": "Enqueue drift runs whose first enqueue met a broker that was down, "
            "or whose worker died (docs/faults.md).",
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0007_driftrun_lease"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
