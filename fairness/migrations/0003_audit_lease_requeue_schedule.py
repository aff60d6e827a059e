"""A lease on running audits, and the beat entry that enqueues again audits left pending
(acknowledged while the broker was down) or running with a lapsed lease."""

from django.db import migrations, models

from core.beat import entry_remove, interval_entry_create

NAME = "fairness: requeue pending audits"
TASK = "fairness.tasks.fairness_audits_requeue"


def create(apps, schema_editor):
    interval_entry_create(
        apps,
        name=NAME,
        task=TASK,
        every=1,
        period="minutes",
        description="Enqueue fairness audits whose first enqueue met a broker that was down, "
        "or whose worker died (docs/faults.md).",
    )


def remove(apps, schema_editor):
    entry_remove(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("fairness", "0002_trigger_choices_quarterly_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="fairnessaudit",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(create, remove),
    ]
