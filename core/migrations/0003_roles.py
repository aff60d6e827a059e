"""Give the roles their current permissions (the audit trail's are core's now)."""

from django.db import migrations

from core.roles import roles_sync


def sync(apps, schema_editor):
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_content_types_and_schedule"),
        ("registry", "0007_records_moved_to_core"),
        ("monitoring", "0008_drift_runs_requeue_schedule"),
        ("explain", "0003_precompute_schedule"),
        ("fairness", "0002_trigger_choices_quarterly_schedule"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
