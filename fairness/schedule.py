"""The quarterly fairness audit schedule, stored in django-celery-beat's tables.

The data migration creates it so that it is editable in the admin (*Periodic
tasks*): the crontab, and the task's kwargs (source, days, attributes). Syncing
never overwrites an existing row, so edits made there survive later migrations
and demo runs.
"""

import json
from typing import Any

from django.apps import apps as global_apps
from django.apps.registry import Apps

from core.beat import crontab_entry_create

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


def schedule_sync(apps: Apps | None = None) -> Any:
    """Create the quarterly PeriodicTask (and its crontab) unless it exists; returns it."""
    return crontab_entry_create(
        global_apps if apps is None else apps,
        name=SCHEDULE_NAME,
        task=TASK_NAME,
        crontab=QUARTERLY,
        kwargs=json.dumps(DEFAULT_KWARGS),
        description=(
            "Audits every production version on its logged predictions with analyst "
            "verdicts; a failing audit raises a critical alert."
        ),
    )
