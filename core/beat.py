"""Helpers for the data migrations that keep Celery beat's schedule (django-celery-beat
rows) in step with the tasks: create an entry, remove it, follow a task that moved."""


def interval_entry_create(
    apps, *, name: str, task: str, every: int, period: str, description: str
) -> None:
    """Create the beat entry ``name`` running ``task`` every ``every`` ``period``
    (idempotent: an existing entry of that name is left as it is)."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    PeriodicTask.objects.get_or_create(
        name=name,
        defaults={
            "task": task,
            "interval": interval,
            "args": "[]",
            "kwargs": "{}",
            "description": description,
        },
    )


def crontab_entry_create(
    apps, *, name: str, task: str, crontab: dict, description: str, kwargs: str = "{}"
) -> None:
    """Create the beat entry ``name`` running ``task`` on a crontab (UTC) (idempotent)."""
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    schedule, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **crontab)
    PeriodicTask.objects.get_or_create(
        name=name,
        defaults={
            "task": task,
            "crontab": schedule,
            "args": "[]",
            "kwargs": kwargs,
            "description": description,
        },
    )


def entry_remove(apps, *, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()


def entry_move(apps, *, old_name: str, old_task: str, new_name: str, new_task: str) -> None:
    """Point an entry at a task whose module moved, keeping its schedule and state
    (an operator's changes to its interval or enabled flag survive)."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=old_name, task=old_task).update(name=new_name, task=new_task)
    PeriodicTask.objects.filter(task=old_task).update(task=new_task)
