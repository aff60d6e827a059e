"""Daily prediction-log retention purge, as a django-celery-beat schedule editable in admin."""

from django.db import migrations

TASK = "monitoring.tasks_retention.prediction_retention_purge"


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name="Prediction-log retention purge",
        defaults={"task": TASK, "crontab": crontab,
                  "description": "Deletes predictions older than PREDICTION_RETENTION_DAYS."},
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(create, remove)]
