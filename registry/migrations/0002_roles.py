"""Create the role groups with their permissions (see govsite.roles)."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from govsite.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("monitoring", "0001_initial"),
        ("explain", "0001_initial"),
        ("fairness", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
