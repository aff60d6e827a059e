"""Who may call what: every route of the URL conf against every role.

TABLE states, per route name and method, which personas may call it and what an allowed
call answers. Every other persona must be refused: on the API with 401 without
credentials and 403 with them; on pages with the login page, then 403; in the admin with
the admin login for anyone who is not staff, then 403. Allowed calls use real objects of
one seeded world (tests/world.py), so an allowed role gets its real answer, never a 404
that would hide a refusal.

The persona sets come from DESIGN.md section 1 (who does what) and
core.roles.ROLE_PERMISSIONS; `test_the_table_agrees_with_the_roles` checks the two
against each other. Routes are enumerated from the URL resolver, so a new page, endpoint,
method or admin view without a row here fails `test_every_route_has_a_decision`.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.http import urlencode

from core.roles import ROLE_PERMISSIONS
from tests.world import PERSONAS, ROLE_OF, client_for, seeded_world

pytestmark = pytest.mark.django_db

ROLES = frozenset({"ml", "approver", "analyst", "auditor", "soc"})
EVERYONE = frozenset(PERSONAS)
NOBODY: frozenset[str] = frozenset()


def holders(perm: str) -> frozenset:
    """The personas whose role holds `perm` (the table names them; a test checks)."""
    return frozenset(k for k, role in ROLE_OF.items() if role and perm in ROLE_PERMISSIONS[role])


# Who does what (DESIGN.md section 1), written out so that a change to ROLE_PERMISSIONS
# that breaks the intent fails test_the_table_agrees_with_the_roles.
INTENT = {
    "registry.view_mlmodelversion": ROLES,  # everyone with a role reads the registry
    "registry.register_version": {"ml"},
    "registry.request_approval": {"ml"},
    "registry.approve_version": {"approver"},
    "registry.promote_version": {"approver"},
    "registry.set_traffic": {"approver"},
    "core.view_auditevent": {"approver", "auditor"},
    "core.export_audit": {"auditor"},
    "monitoring.view_monitoring": ROLES,
    "monitoring.log_prediction": {"ml", "soc"},
    "monitoring.give_feedback": {"analyst", "soc"},
    "monitoring.manage_alert": {"approver", "analyst"},
    "monitoring.run_drift": {"ml", "approver"},
    "explain.view_explanations": ROLES,
    "fairness.view_fairness": {"ml", "approver", "auditor"},
    "fairness.run_audit": {"ml", "approver"},
}
INTENT = {perm: frozenset(personas) for perm, personas in INTENT.items()}
READ = INTENT["registry.view_mlmodelversion"]
MONITOR = INTENT["monitoring.view_monitoring"]
EXPLAIN = INTENT["explain.view_explanations"]
FAIRNESS = INTENT["fairness.view_fairness"]
ADMIN = frozenset({"approver"})  # the approver's workbench (STAFF_ROLES)
LIFECYCLE = INTENT["registry.register_version"] | INTENT["registry.promote_version"]


@dataclass(frozen=True)
class Case:
    name: str  # URL name, with its namespace
    method: str
    allowed: frozenset
    ok: int  # what an allowed persona gets
    kwargs: Callable = field(default=lambda w: {}, compare=False)
    query: dict | None = None
    body: Callable | None = field(default=None, compare=False)
    multipart: bool = False
    variant: str = ""
    # Who passes the route's own check when the exact permission depends on the body
    # (default: `allowed`); everyone else is refused whatever the body says.
    gate: frozenset | None = None

    @property
    def id(self) -> str:
        return f"{self.method}-{self.name}{'-' + self.variant if self.variant else ''}"


def C(name, method, allowed, ok, **kw) -> Case:
    return Case(name, method, frozenset(allowed), ok, **kw)


def name_kw(w):
    return {"name": w.model.name}


def prod_kw(w):
    return {"pk": w.production.pk}


def alert_kw(w):
    return {"pk": w.alert.pk}


def incident_kw(w):
    return {"incident_id": w.incident}


def registration(w):
    return {
        "version": "2.0.0",
        "artifact": SimpleUploadedFile("model.json", w.extra["artifact"], "application/json"),
        "metadata": json.dumps(w.extra["metadata"]),
    }


def prediction(w):
    return {
        "predictions": [
            {
                "request_id": "matrix-1",
                "model": w.model.name,
                "version": w.production.version,
                "entity": "host-1",
                "features": w.extra["features"],
                "score": 0.4,
            }
        ]
    }


API = [
    C("api-me", "GET", ROLES | {"norole"}, 200),  # it only tells the caller who it is
    C("api-models", "GET", READ, 200),
    C("api-versions", "GET", READ, 200, kwargs=name_kw),
    C("api-versions", "POST", INTENT["registry.register_version"], 201, kwargs=name_kw,
      body=registration, multipart=True),
    C("api-version", "GET", READ, 200, kwargs=prod_kw),
    C("api-request-approval", "POST", INTENT["registry.request_approval"], 201,
      kwargs=lambda w: {"pk": w.testing.pk}, body=lambda w: {"notes": "please"}),
    C("api-approve", "POST", INTENT["registry.approve_version"], 200,
      kwargs=lambda w: {"pk": w.staged.pk}, body=lambda w: {"notes": "ok"}),
    C("api-reject", "POST", INTENT["registry.approve_version"], 200,
      kwargs=lambda w: {"pk": w.staged.pk}, body=lambda w: {"notes": "recall too low"}),
    # Moving within training/testing/staging is the ML engineer's; production and
    # archive are the approver's.
    C("api-transition", "POST", INTENT["registry.register_version"], 200, variant="staging",
      kwargs=lambda w: {"pk": w.testing.pk}, body=lambda w: {"to": "staging"}, gate=LIFECYCLE),
    C("api-transition", "POST", INTENT["registry.promote_version"], 200, variant="archive",
      kwargs=lambda w: {"pk": w.staged.pk}, body=lambda w: {"to": "archived"}, gate=LIFECYCLE),
    C("api-rollback", "POST", INTENT["registry.promote_version"], 200, kwargs=name_kw,
      body=lambda w: {"notes": "regression"}),
    C("api-traffic", "GET", READ, 200, kwargs=name_kw),
    C("api-traffic", "PUT", INTENT["registry.set_traffic"], 200, kwargs=name_kw,
      body=lambda w: {"shadows": [w.staged.version], "notes": "shadow the candidate"}),
    C("api-route", "GET", READ, 200, kwargs=name_kw, query={"entity": "host-1"}),
    C("api-predictions", "POST", INTENT["monitoring.log_prediction"], 201, body=prediction),
    C("api-feedback", "POST", INTENT["monitoring.give_feedback"], 200,
      body=lambda w: {"verdicts": [{"incident_id": "INC-2", "label": "threat"}]}),
    C("api-alerts", "GET", MONITOR, 200, query={"status": "active"}),
    C("api-alert", "GET", MONITOR, 200, kwargs=alert_kw),
    C("api-alert-acknowledge", "POST", INTENT["monitoring.manage_alert"], 200, kwargs=alert_kw,
      body=lambda w: {}),
    C("api-alert-resolve", "POST", INTENT["monitoring.manage_alert"], 200, kwargs=alert_kw,
      body=lambda w: {"note": "fixed upstream"}),
    C("api-drift", "GET", MONITOR, 200, kwargs=name_kw),
    C("api-drift-run", "POST", INTENT["monitoring.run_drift"], 202, kwargs=name_kw,
      body=lambda w: {}),
    C("api-performance", "GET", MONITOR, 200, kwargs=name_kw),
    C("api-drift-run-detail", "GET", MONITOR, 200, kwargs=lambda w: {"pk": w.drift_run.pk}),
    C("api-fairness-audits", "GET", FAIRNESS, 200),
    C("api-fairness-audits", "POST", INTENT["fairness.run_audit"], 202,
      body=lambda w: {"version": w.production.pk}),
    C("api-fairness-audit", "GET", FAIRNESS, 200, kwargs=lambda w: {"pk": w.audit.pk}),
    C("explain-incident", "GET", EXPLAIN, 200, kwargs=incident_kw),
]  # fmt: skip

PAGES = [
    C("registry:index", "GET", READ, 200),
    C("registry:version", "GET", READ, 200, kwargs=prod_kw),  # the model card
    C("registry:audit", "GET", INTENT["core.view_auditevent"], 200),
    C("registry:audit-export", "GET", INTENT["core.export_audit"], 200),
    C("experiments:experiment", "GET", READ & MONITOR, 200, kwargs=name_kw),
    C("monitoring:index", "GET", MONITOR, 200),
    C("monitoring:dashboard", "GET", MONITOR, 200, kwargs=name_kw),
    C("monitoring:run-status", "GET", MONITOR, 200, kwargs=lambda w: {"pk": w.drift_run.pk}),
    C("monitoring:run-now", "POST", INTENT["monitoring.run_drift"], 302, kwargs=name_kw),
    C("monitoring:alert-acknowledge", "POST", INTENT["monitoring.manage_alert"], 302,
      kwargs=alert_kw),
    C("monitoring:alert-resolve", "POST", INTENT["monitoring.manage_alert"], 302,
      kwargs=alert_kw, body=lambda w: {"note": "fixed"}),
    C("explain:index", "GET", EXPLAIN, 200),
    C("explain:incident", "GET", EXPLAIN, 200, kwargs=incident_kw),
    C("explain:compare", "GET", EXPLAIN, 200, kwargs=incident_kw),
    C("explain:importance", "GET", EXPLAIN, 200, kwargs=prod_kw),
    C("explain:verdict", "POST", INTENT["monitoring.give_feedback"], 302, kwargs=incident_kw,
      body=lambda w: {"verdict": "benign", "note": "known scanner"}),
    C("fairness:index", "GET", FAIRNESS, 200),
    C("fairness:model", "GET", FAIRNESS, 200, kwargs=name_kw),
    C("fairness:version", "GET", FAIRNESS, 200, kwargs=prod_kw),
    C("fairness:run", "POST", INTENT["fairness.run_audit"], 302, kwargs=prod_kw,
      body=lambda w: {"source": "evaluation", "attributes": "geo_region"}),
    C("fairness:report", "GET", FAIRNESS, 200, kwargs=prod_kw),  # compliance report
    C("fairness:report-export", "GET", FAIRNESS, 200, variant="csv",
      kwargs=lambda w: {"pk": w.production.pk, "fmt": "csv"}),
    C("fairness:report-export", "GET", FAIRNESS, 200, variant="json",
      kwargs=lambda w: {"pk": w.production.pk, "fmt": "json"}),
    C("fairness:audit", "GET", FAIRNESS, 200, kwargs=lambda w: {"pk": w.audit.pk}),
]  # fmt: skip

# Open to everyone; tested as an anonymous and a role-less caller.
PUBLIC = [
    C("home", "GET", EVERYONE, 200),  # shows anonymous visitors only a login link
    C("healthz", "GET", EVERYONE, 200),
    C("login", "GET", EVERYONE, 200),
    C("logout", "POST", EVERYONE, 302),
    C("api-schema", "GET", EVERYONE, 200),
    C("api-docs", "GET", EVERYONE, 200),
    C("metrics", "GET", EVERYONE, 200),  # network- or token-restricted; tests call from loopback
]


def staged_kw(w):
    return {"object_id": w.staged.pk}


def request_kw(w):
    return {"object_id": w.pending.pk}


# The approver's workbench. Every custom admin view and every model's changelist needs
# a row; Django's own add/change/delete/history pages go through the same
# has_*_permission methods the changelists exercise.
ADMIN_PAGES = [
    C("admin:index", "GET", ADMIN, 200),
    C("admin:app_list", "GET", ADMIN, 200, kwargs=lambda w: {"app_label": "registry"}),
    C("admin:registry_mlmodel_changelist", "GET", ADMIN, 200),
    C("admin:registry_mlmodel_change", "GET", ADMIN, 200,
      kwargs=lambda w: {"object_id": w.model.pk}),  # approval policy: approvers set it
    C("admin:registry_mlmodelversion_changelist", "GET", ADMIN, 200),
    C("admin:registry_mlmodelversion_change", "GET", ADMIN, 200, kwargs=staged_kw),
    # Bulk actions: the confirmation page of archiving the selected versions.
    C("admin:registry_mlmodelversion_changelist", "POST", INTENT["registry.promote_version"],
      200, variant="archive-action",
      body=lambda w: {"action": "archive_selected", "_selected_action": [w.staged.pk]}),
    C("admin:registry_mlmodelversion_add", "GET", NOBODY, 200),  # versions come from the API
    C("admin:registry_mlmodelversion_lifecycle", "GET", INTENT["registry.promote_version"],
      200, kwargs=lambda w: {"pk": w.staged.pk, "op": "archive"}),
    C("admin:registry_mlmodelversion_lifecycle", "POST", INTENT["registry.promote_version"],
      302, kwargs=lambda w: {"pk": w.staged.pk, "op": "archive"},
      body=lambda w: {"notes": "superseded"}),
    C("admin:registry_approvalrequest_changelist", "GET", ADMIN, 200),
    C("admin:registry_approvalrequest_change", "GET", ADMIN, 200, kwargs=request_kw),  # evidence
    C("admin:registry_approvalrequest_decide", "POST", INTENT["registry.approve_version"], 302,
      kwargs=lambda w: {"pk": w.pending.pk}, body=lambda w: {"decision": "approve"}),
    C("admin:registry_policychange_changelist", "GET", ADMIN, 200),  # two-person rule
    C("admin:core_auditevent_changelist", "GET", ADMIN, 200),
    C("admin:core_auditevent_delete", "GET", NOBODY, 200,
      kwargs=lambda w: {"object_id": w.extra["audit_event"]}),  # append-only
    C("admin:registry_trafficsplit_changelist", "GET", INTENT["registry.set_traffic"], 200),
    C("admin:registry_trafficsplit_edit", "GET", INTENT["registry.set_traffic"], 200,
      kwargs=name_kw),
    C("admin:registry_experiment_changelist", "GET", INTENT["registry.set_traffic"], 200),
    C("admin:core_notification_changelist", "GET", NOBODY, 200),  # the outbox
    C("admin:core_taskdelivery_changelist", "GET", NOBODY, 200),  # crash counts, quarantine
    C("admin:monitoring_alert_changelist", "GET", ADMIN, 200),
    C("admin:monitoring_alert_changelist", "POST", ADMIN & INTENT["monitoring.manage_alert"],
      302, variant="acknowledge-action",
      body=lambda w: {"action": "acknowledge", "_selected_action": [w.alert.pk]}),
    C("admin:monitoring_driftresult_changelist", "GET", ADMIN, 200),
    C("admin:monitoring_performanceresult_changelist", "GET", ADMIN, 200),
    C("admin:monitoring_driftrun_changelist", "GET", ADMIN, 200),
    C("admin:monitoring_detectorstate_changelist", "GET", ADMIN, 200),
    C("admin:fairness_fairnessaudit_changelist", "GET", ADMIN, 200),
    # Accounts, tokens, schedules and login throttling are for superusers only.
    *[C(f"admin:{n}_changelist", "GET", NOBODY, 200) for n in (
        "auth_user", "auth_group", "knox_authtoken", "axes_accessattempt", "axes_accesslog",
        "axes_accessfailurelog", "django_celery_beat_periodictask",
        "django_celery_beat_clockedschedule", "django_celery_beat_crontabschedule",
        "django_celery_beat_solarschedule", "django_celery_beat_intervalschedule",
    )],
]  # fmt: skip

TABLE = API + PAGES + ADMIN_PAGES
# Django's own admin views that every staff account may use on itself.
ADMIN_BUILTIN = {"login", "logout", "password_change", "password_change_done", "autocomplete",
                 "jsi18n", "view_on_site"}  # fmt: skip
ADMIN_MODEL_PAGE = re.compile(r"_(add|change|delete|history|password_change)$")
DRF_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, namespace="", prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, ns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            yield namespace + entry.name, (entry, prefix + str(entry.pattern))


ROUTES = {name: entry for name, (entry, _) in _walk(get_resolver().url_patterns)}
PATTERNS = {name: route for name, (_, route) in _walk(get_resolver().url_patterns)}
NEEDS_ROW = {
    name
    for name in ROUTES
    if not name.startswith("admin:")
    or (name[6:] not in ADMIN_BUILTIN and not ADMIN_MODEL_PAGE.search(name))
}


def _kind(name: str) -> str:
    if name.startswith("admin:"):
        return "admin"
    return "api" if hasattr(ROUTES[name].callback, "cls") else "page"


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory, trained):
    yield from seeded_world(django_db_blocker, tmp_path_factory, trained)


def call(world, case: Case, persona: str):
    kind = _kind(case.name)
    client = client_for(world, persona, api=kind == "api")
    url = reverse(case.name, kwargs=case.kwargs(world))
    if case.query:
        url += "?" + urlencode(case.query)
    data = case.body(world) if case.body else None
    options = {}
    if kind == "api" and case.method != "GET":
        options["format"] = "multipart" if case.multipart else "json"
    return getattr(client, case.method.lower())(url, data, **options)


def assert_refused(response, case: Case, persona: str):
    kind, status = _kind(case.name), response.status_code
    where = f"{case.id} as {persona}: {status} {response.content[:200]!r}"
    if kind == "api":
        assert status == (401 if persona == "anon" else 403), where
        assert response.json()["error"], where
    elif kind == "page" and persona == "anon":
        assert status == 302 and response["Location"].startswith("/accounts/login/"), where
    elif kind == "admin" and (persona == "anon" or ROLE_OF[persona] != "Approver"):
        assert status == 302 and response["Location"].startswith("/admin/login/"), where
    else:
        assert status == 403, where


def _matrix():
    for case in TABLE:
        for persona in PERSONAS:
            yield pytest.param(case, persona, id=f"{case.id}-{persona}")
    for case in PUBLIC:
        for persona in ("anon", "norole"):
            yield pytest.param(case, persona, id=f"{case.id}-{persona}")


def test_the_table_agrees_with_the_roles():
    for perm, personas in INTENT.items():
        assert holders(perm) == personas, perm


def test_every_route_has_a_decision():
    rows = {c.name for c in TABLE + PUBLIC}
    assert len(NEEDS_ROW) > 80
    assert NEEDS_ROW - rows == set(), "routes without a permission decision in TABLE"
    assert rows - set(ROUTES) == set(), "TABLE rows for routes that do not exist"
    for name, pattern in ROUTES.items():
        view = getattr(pattern.callback, "cls", None)
        if view is None or name not in rows:
            continue
        served = {m.upper() for m in DRF_METHODS if hasattr(view, m)}
        declared = {c.method for c in TABLE + PUBLIC if c.name == name}
        assert served == declared, (name, served, declared)


@pytest.mark.parametrize("case, persona", list(_matrix()))
def test_permission_matrix(world, case, persona):
    response = call(world, case, persona)
    if persona in case.allowed:
        assert response.status_code == case.ok, (
            f"{case.id} as {persona}: {response.status_code} {response.content[:300]!r}"
        )
    else:
        assert_refused(response, case, persona)


def _undeclared():
    by_name: dict[str, list[Case]] = {}
    for case in API + PAGES:
        by_name.setdefault(case.name, []).append(case)
    for name, cases in sorted(by_name.items()):
        declared = {c.method for c in cases}
        persona = sorted(set.intersection(*(set(c.allowed) for c in cases)) or cases[0].allowed)[0]
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - declared):
            yield pytest.param(cases[0], method, persona, id=f"{method}-{name}")


@pytest.mark.parametrize("case, method, persona", list(_undeclared()))
def test_undeclared_methods_are_not_served(world, case, method, persona):
    """A method the table does not list answers 405, even to a persona the route admits."""
    client = client_for(world, persona, api=_kind(case.name) == "api")
    url = reverse(case.name, kwargs=case.kwargs(world))
    response = getattr(client, method.lower())(url)
    assert response.status_code == 405, (case.name, method, persona, response.status_code)


# --- refusals that must not depend on the object or the body ------------------------

MADE_UP = {"pk": 999999, "object_id": 999999, "name": "no-such-model", "incident_id": "no-such"}


def _refusals():
    for case in API + PAGES:
        for persona in sorted(EVERYONE - (case.gate or case.allowed)):
            yield pytest.param(case, persona, id=f"{case.id}-{persona}")


@pytest.mark.parametrize("case, persona", list(_refusals()))
def test_refusals_do_not_depend_on_ids_or_bodies(world, case, persona):
    """A caller without the permission is refused before the view looks anything up or
    reads the body: a made-up id or a nonsense body gets the same refusal."""
    kwargs = {k: MADE_UP.get(k, v) for k, v in case.kwargs(world).items()}
    made_up = Case(case.name, case.method, frozenset(), case.ok, lambda w: kwargs,
                   query={"entity": "", "status": "bogus"}, variant=case.variant,
                   body=None if case.method == "GET" else lambda w: {"bogus": ["x"]})  # fmt: skip
    assert_refused(call(world, made_up, persona), made_up, persona)
