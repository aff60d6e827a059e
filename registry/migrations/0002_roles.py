"""Create the role groups with their permissions (see core.roles).

The mapping is the one of this migration's day (the audit trail's permissions were
registry's then); core/migrations/0003_roles applies the current one.
"""

from django.db import migrations

from core.roles import roles_sync

ROLES_0002 = {
    "ML engineer": [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "registry.register_version",
        "registry.request_approval",
        "monitoring.log_prediction",
        "monitoring.view_monitoring",
        "monitoring.run_drift",
        "explain.view_explanations",
        "fairness.view_fairness",
        "fairness.run_audit",
    ],
    "Approver": [
        "registry.view_mlmodel",
        "registry.change_mlmodel",
        "registry.view_mlmodelversion",
        "registry.change_mlmodelversion",
        "registry.view_approvalrequest",
        "registry.view_auditevent",
        "registry.approve_version",
        "registry.promote_version",
        "registry.set_traffic",
        "monitoring.view_monitoring",
        "monitoring.manage_alert",
        "monitoring.run_drift",
        "explain.view_explanations",
        "fairness.view_fairness",
        "fairness.run_audit",
    ],
    "Analyst": [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "monitoring.view_monitoring",
        "monitoring.give_feedback",
        "monitoring.manage_alert",
        "explain.view_explanations",
    ],
    "Auditor": [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "registry.view_approvalrequest",
        "registry.view_auditevent",
        "registry.export_audit",
        "monitoring.view_monitoring",
        "explain.view_explanations",
        "fairness.view_fairness",
    ],
    "SOC service": [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "monitoring.log_prediction",
        "monitoring.give_feedback",
        "monitoring.view_monitoring",
        "explain.view_explanations",
    ],
}


def create_roles(apps, schema_editor):
    roles_sync(apps, role_permissions=ROLES_0002)


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
