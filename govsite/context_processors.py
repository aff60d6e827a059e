"""Navigation entries, shown only to users whose role may open them."""

NAV = [
    ("Monitoring", "monitoring:index", "monitoring.view_monitoring"),
    ("Explanations", "explain:index", "explain.view_explanations"),
    ("Fairness", "fairness:index", "fairness.view_fairness"),
    ("Registry", "registry:index", "registry.view_mlmodelversion"),
    ("Audit trail", "registry:audit", "core.view_auditevent"),
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
    active = _active(request, [url_name for _, url_name in items])
    return {
        "nav_items": [(label, url_name, url_name == active) for label, url_name in items],
        "user_roles": [g.name for g in user.groups.all()],
    }


def _active(request, url_names: list[str]) -> str | None:
    """The entry of the current page: the longest entry naming a prefix of the view
    (registry:audit for registry:audit_export), else the entry of its namespace."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    prefixes = [u for u in url_names if match.view_name.startswith(u)]
    if prefixes:
        return max(prefixes, key=len)
    namespace = match.namespace.split(":")[0]
    return next((u for u in url_names if namespace and u.split(":")[0] == namespace), None)
