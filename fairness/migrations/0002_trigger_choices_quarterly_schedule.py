"""Trigger choices, and the quarterly audit schedule as an admin-editable PeriodicTask."""

from django.db import migrations, models

from core.beat import entry_remove
from fairness.schedule import SCHEDULE_NAME, schedule_sync


def create_schedule(apps, schema_editor):
    schedule_sync(apps)


def remove_schedule(apps, schema_editor):
    entry_remove(apps, name=SCHEDULE_NAME)


class Migration(migrations.Migration):

    dependencies = [
        ("fairness", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AlterField(
            model_name="fairnessaudit",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("manual", "On demand"),
                    ("approval", "Approval request"),
                    ("schedule", "Quarterly schedule"),
                ],
                default="manual",
                max_length=16,
            ),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
