"""Approvers and auditors see policy change proposals (core.roles)."""

from django.db import migrations

from core.roles import roles_sync


def sync(apps, schema_editor):
    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0008_governance_policy"),
        ("core", "0003_roles"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
