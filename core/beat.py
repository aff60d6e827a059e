"""Helpers for the data migrations that keep Celery beat's schedule (django-celery-beat
rows) in step with the tasks: create an entry, remove it, follow a task that moved.

``apps`` is the migration's historical app registry (or ``django.apps.apps`` outside a
migration); the models it hands out are historical, hence the ``Any`` entries."""

from collections.abc import Mapping
from typing import Any

from django.apps.registry import Apps


def interval_entry_create(
    apps: Apps,
    *,
    name: str,
    task: str,
    every: int,
    period: str,
    description: str = "",
    kwargs: str = "{}",
) -> Any:
    """The beat entry ``name`` running ``task`` every ``every`` ``period``, created
    unless it exists (idempotent); returns it."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    existing = PeriodicTask.objects.filter(name=name).first()
    if existing is not None:
        return existing
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    return PeriodicTask.objects.create(
        name=name,
        task=task,
        interval=interval,
        args="[]",
        kwargs=kwargs,
        description=description,
    )


def crontab_entry_create(
    apps: Apps,
    *,
    name: str,
    task: str,
    crontab: Mapping[str, str],
    description: str = "",
    kwargs: str = "{}",
) -> Any:
    """The beat entry ``name`` running ``task`` on a crontab in UTC (``minute``, ``hour``,
    ``day_of_week``, ``day_of_month``, ``month_of_year``), created unless it exists
    (idempotent); returns it."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    existing = PeriodicTask.objects.filter(name=name).first()
    if existing is not None:
        return existing
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    schedule, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **crontab)
    return PeriodicTask.objects.create(
        name=name,
        task=task,
        crontab=schedule,
        args="[]",
        kwargs=kwargs,
        description=description,
    )


def entry_remove(apps: Apps, *, name: str | None = None, task: str | None = None) -> None:
    """Delete the entry named ``name``, or every entry running ``task``."""
    if (name is None) == (task is None):
        raise ValueError("entry_remove takes one of name and task")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    lookup = {"name": name} if name is not None else {"task": task}
    PeriodicTask.objects.filter(**lookup).delete()


def entry_move(apps: Apps, *, old_name: str, old_task: str, new_name: str, new_task: str) -> None:
    """Point an entry at a task whose module moved, keeping its schedule and state
    (an operator's changes to its interval or enabled flag survive)."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=old_name, task=old_task).update(name=new_name, task=new_task)
    PeriodicTask.objects.filter(task=old_task).update(task=new_task)
