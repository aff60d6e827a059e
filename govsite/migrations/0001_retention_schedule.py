"""Daily prediction-log retention purge, as a django-celery-beat schedule editable in admin."""

from django.db import migrations

from core.beat import crontab_entry_create, entry_remove

TASK = "monitoring.tasks_retention.prediction_retention_purge"


def create(apps, schema_editor):
    crontab_entry_create(
        apps,
        name="Prediction-log retention purge",
        task=TASK,
        crontab={
            "minute": "30",
            "hour": "3",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
        },
        description="Deletes predictions older than PREDICTION_RETENTION_DAYS.",
    )


def remove(apps, schema_editor):
    entry_remove(apps, task=TASK)


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create, remove)]
