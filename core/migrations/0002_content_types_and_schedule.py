"""Follow the models that moved from registry: their content types (so permissions,
group grants and admin log entries keep pointing at them) and the outbox's beat entry."""

from django.db import migrations

from core.beat import entry_move

MOVED = ("auditevent", "auditchainhead", "notification")


def content_types_to_core(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="core", model=model).exists():
            ContentType.objects.filter(app_label="registry", model=model).update(app_label="core")


def content_types_to_registry(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="core", model__in=MOVED).update(app_label="registry")


def schedule_to_core(apps, schema_editor):
    entry_move(
        apps,
        old_name="registry: requeue pending notifications",
        old_task="registry.tasks.notifications_requeue",
        new_name="core: requeue pending notifications",
        new_task="core.tasks.notifications_requeue",
    )


def schedule_to_registry(apps, schema_editor):
    entry_move(
        apps,
        old_name="core: requeue pending notifications",
        old_task="core.tasks.notifications_requeue",
        new_name="registry: requeue pending notifications",
        new_task="registry.tasks.notifications_requeue",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("registry", "0007_records_moved_to_core"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(content_types_to_core, content_types_to_registry),
        migrations.RunPython(schedule_to_core, schedule_to_registry),
    ]
