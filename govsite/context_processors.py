"""Navigation entries, shown only to users whose role may open them."""

NAV = [
    ("Monitoring", "monitoring:index", "monitoring.view_monitoring"),
    ("Explanations", "explain:index", "explain.view_explanations"),
    ("Fairness", "fairness:index", "fairness.view_fairness"),
    ("Registry", "registry:index", "registry.view_mlmodelversion"),
    ("Audit trail", "registry:audit", "registry.view_auditevent"),
    ("API docs", "api-docs", None),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = [
        (label, url_name) for label, url_name, perm in NAV if perm is None or user.has_perm(perm)
    ]
    if user.is_staff:
        items.append(("Admin", "admin:index"))
    return {"nav_items": items, "user_roles": [g.name for g in user.groups.all()]}
