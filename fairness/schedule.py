"""The quarterly fairness audit schedule, stored in django-celery-beat's tables.

The data migration creates it so that it is editable in the admin (*Periodic
tasks*): the crontab, and the task's kwargs (source, days, attributes). Syncing
never overwrites an existing row, so edits made there survive later migrations
and demo runs.
"""

import json

SCHEDULE_NAME = "fairness: quarterly audit of production versions"
TASK_NAME = "fairness.tasks.fairness_schedule_run"
# 03:00 UTC on the first day of each quarter.
QUARTERLY = {
    "minute": "0",
    "hour": "3",
    "day_of_month": "1",
    "month_of_year": "1,4,7,10",
    "day_of_week": "*",
}
# Logged predictions with analyst verdicts over the quarter just ended.
DEFAULT_KWARGS = {"source": "logged", "days": 92, "attributes": ["geo_region"]}


def schedule_sync(apps=None):
    """Create the quarterly PeriodicTask (and its crontab) unless it exists; returns it."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    existing = PeriodicTask.objects.filter(name=SCHEDULE_NAME).first()
    if existing is not None:
        return existing
    crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **QUARTERLY)
    return PeriodicTask.objects.create(
        name=SCHEDULE_NAME,
        task=TASK_NAME,
        crontab=crontab,
        kwargs=json.dumps(DEFAULT_KWARGS),
        description=(
            "Audits every production version on its logged predictions with analyst "
            "verdicts; a failing audit raises a critical alert."
        ),
    )
