"""Schedule the A/B guardrail check with django-celery-beat (editable in the admin)."""

from django.db import migrations

from core.beat import entry_remove, interval_entry_create

TASK = "registry.tasks.experiment_guardrails_check"
NAME = "A/B guardrails: roll back a failing challenger"


def schedule(apps, schema_editor):
    interval_entry_create(apps, name=NAME, task=TASK, every=10, period="minutes")


def unschedule(apps, schema_editor):
    entry_remove(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_traffic_experiments"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
