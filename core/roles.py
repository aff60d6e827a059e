"""Roles are Django groups; this module names them and the permissions each one holds.

The groups are created by registry's data migrations; `roles_sync` is also what
those migrations call, with the historical app registry, so the mapping here is
the single source of truth. Adding a permission to a role needs a new migration
that calls `roles_sync` again.
"""

from django.apps.registry import Apps

ML_ENGINEER = "ML engineer"
APPROVER = "Approver"
ANALYST = "Analyst"
AUDITOR = "Auditor"
SOC_SERVICE = "SOC service"

ALL_ROLES = (ML_ENGINEER, APPROVER, ANALYST, AUDITOR, SOC_SERVICE)

# Roles whose members use the Django admin (approvers' workbench).
STAFF_ROLES = {APPROVER}

ROLE_PERMISSIONS: dict[str, list[str]] = {
    ML_ENGINEER: [
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
    APPROVER: [
        "registry.view_mlmodel",
        "registry.change_mlmodel",
        "registry.view_mlmodelversion",
        "registry.change_mlmodelversion",
        "registry.view_approvalrequest",
        "registry.view_policychange",
        "core.view_auditevent",
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
    ANALYST: [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "monitoring.view_monitoring",
        "monitoring.give_feedback",
        "monitoring.manage_alert",
        "explain.view_explanations",
    ],
    AUDITOR: [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "registry.view_approvalrequest",
        "core.view_auditevent",
        "core.export_audit",
        "monitoring.view_monitoring",
        "explain.view_explanations",
        "fairness.view_fairness",
    ],
    SOC_SERVICE: [
        "registry.view_mlmodel",
        "registry.view_mlmodelversion",
        "monitoring.log_prediction",
        "monitoring.give_feedback",
        "monitoring.view_monitoring",
        "explain.view_explanations",
    ],
}


def roles_sync(
    apps: Apps | None = None, *, role_permissions: dict[str, list[str]] | None = None
) -> None:
    """Create every role group and give it exactly its permissions (idempotent).

    A migration that ran before a permission moved passes the mapping of its day. Run by
    a migration (``apps`` given), a permission of a model that a later migration creates
    is left for that later migration's own ``roles_sync``; run live, every permission
    must exist.
    """
    role_permissions = ROLE_PERMISSIONS if role_permissions is None else role_permissions
    historical = apps is not None
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        # Permissions are normally created after all migrations; make sure they
        # exist now so the groups can reference them. create_permissions only tests
        # models_module for truth; historical app configs have no module to put there.
        app_config.models_module = True  # type: ignore[assignment]
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perm_names in role_permissions.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for dotted in perm_names:
            app_label, codename = dotted.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is None and not historical:
                raise LookupError(f"role {role!r} names an unknown permission {dotted}")
            if found is not None:
                perms.append(found)
        group.permissions.set(perms)
