"""Beat entry that enqueues again outbox notifications left pending."""

from django.db import migrations

from core.beat import entry_remove, interval_entry_create

NAME = "registry: requeue pending notifications"
TASK = "registry.tasks.notifications_requeue"


def create(apps, schema_editor):
    interval_entry_create(
        apps,
        name=NAME,
        task=TASK,
        every=1,
        period="minutes",
        description="Send outbox notifications whose first enqueue met a broker that "
        "was down (docs/faults.md).",
    )


def remove(apps, schema_editor):
    entry_remove(apps, name=NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0005_ab_guardrail_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
