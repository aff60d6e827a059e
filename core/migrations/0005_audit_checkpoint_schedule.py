"""Beat entries of the audit trail's anchoring: a checkpoint of the chain head every 10
minutes (verified from the previous one), a full verification with its checkpoint every
night, and the summaries of repeated events (failed logins) whose period ended."""

from django.db import migrations

from core.beat import crontab_entry_create, entry_remove, interval_entry_create

CHECKPOINT = "core: audit checkpoint"
FULL = "core: full audit verification"
REPEATS = "core: summarise repeated audit events"


def schedule(apps, schema_editor):
    interval_entry_create(
        apps,
        name=CHECKPOINT,
        task="core.tasks.audit_checkpoint",
        every=10,
        period="minutes",
        description="Verify the audit chain from the last checkpoint, sign its head, "
        "write it to the external sinks (docs/governance.md).",
    )
    crontab_entry_create(
        apps,
        name=FULL,
        task="core.tasks.audit_checkpoint",
        crontab={"minute": "45", "hour": "2"},
        kwargs='{"full": true}',
        description="Verify the whole audit chain against every checkpoint, then sign "
        "a checkpoint marked as fully verified.",
    )
    interval_entry_create(
        apps,
        name=REPEATS,
        task="core.tasks.audit_repeats_close",
        every=5,
        period="minutes",
        description="Write one summary event per repeated event (failed logins) whose "
        "period ended.",
    )


def unschedule(apps, schema_editor):
    for name in (CHECKPOINT, FULL, REPEATS):
        entry_remove(apps, name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0004_audit_anchoring"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
