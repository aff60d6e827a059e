"""One seeded governance world per test module, rolled back when the module ends.

`seeded_world` builds, inside an outer transaction that is rolled back at the end of the
module, a user in every role (and one without), a model with versions in every
lifecycle state, logged predictions, an alert, a drift run and a fairness audit. Each
test runs in a savepoint inside it (pytest-django's `db`), so what a test writes is gone
before the next one starts and every test sees the same objects.

Users get unusable passwords: hashing one costs about a second on a busy machine, and
the clients log in with `force_login` or a token.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from core.roles import ANALYST, APPROVER, AUDITOR, ML_ENGINEER, SOC_SERVICE, STAFF_ROLES

# Persona keys used by the permission table, and the role each one holds.
ROLE_OF = {
    "ml": ML_ENGINEER,
    "approver": APPROVER,
    "analyst": ANALYST,
    "auditor": AUDITOR,
    "soc": SOC_SERVICE,
    "norole": None,
}
PERSONAS = (*ROLE_OF, "anon")


@dataclass
class World:
    users: dict
    sessions: dict  # persona -> session cookies of a signed-in client
    soc_token: str
    model: object
    previous: object  # 1.0.0: archived, was in production (rollback target)
    production: object  # 1.1.0: production
    staged: object  # 1.2.0: staging with a pending approval request
    testing: object  # 1.3.0: testing, never submitted
    pending: object  # the pending ApprovalRequest of 1.2.0
    incident: str
    alert: object
    drift_run: object
    audit: object
    artifact_root: object
    extra: dict = field(default_factory=dict)


def _user(role: str | None, username: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(
        username=username, password=None, is_staff=role in STAFF_ROLES
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def _session(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies


def _log(version, X, incidents, role):
    from django.utils import timezone

    from tests import factories

    start = timezone.now() - timedelta(hours=2)
    rows = [
        {
            "request_id": f"req-{version.version}-{incident}",
            "incident_id": incident,
            "entity": f"user-{i}",
            "created_at": start + timedelta(seconds=i),
        }
        for i, incident in enumerate(incidents)
    ]
    factories.predictions_log(version, rows, X=X, role=role, attributes={"geo_region": "EU"})


def build_world(trained, artifact_root) -> World:
    """Everything the permission matrix and the hostile-input tests read or act on."""
    from knox.models import AuthToken

    from core.models import AuditEvent
    from fairness.services import fairness_audit_create
    from monitoring.alerts import alert_raise
    from monitoring.drift_jobs import drift_run_create
    from registry import services
    from tests import factories

    users = {key: _user(role, f"w_{key}") for key, role in ROLE_OF.items()}
    sessions = {key: _session(user) for key, user in users.items()}
    ml, approver = users["ml"], users["approver"]
    _, token = AuthToken.objects.create(user=users["soc"], expiry=None)

    def register(semver, to="staging"):
        return factories.version(trained, user=ml, model="threat", semver=semver, to=to)

    def promote(version):
        request = services.approval_request_create(version=version, actor=ml)
        services.approval_decide(request=request, approver=approver, decision="approve")
        version.refresh_from_db()
        return services.version_transition(version=version, to="production", actor=approver)

    previous = register("1.0.0")
    model = previous.model
    model.fairness_gate = False
    model.save(update_fields=["fairness_gate"])
    promote(previous)
    production = promote(register("1.1.0"))
    staged = register("1.2.0")
    pending = services.approval_request_create(version=staged, actor=ml)
    testing = register("1.3.0", to="testing")
    previous.refresh_from_db()

    incidents = [f"INC-{i}" for i in range(1, 6)]
    X = trained.X_valid[: len(incidents)].astype(np.float64)
    _log(production, X, incidents, "champion")
    _log(staged, X[:1], incidents[:1], "shadow")

    alert = alert_raise(
        model=model,
        version=production,
        kind="drift",
        severity="warning",
        dedupe_key="world:drift",
        title="bytes_out drifted",
    )
    drift_run = drift_run_create(model=model, trigger="api", user=ml, enqueue=False)
    audit = fairness_audit_create(version=production, requested_by=ml, enqueue=False)
    metadata = trained.registration_metadata()
    metadata.pop("validation_metrics")
    extra = {
        "artifact": trained.artifact_bytes("json"),
        "metadata": metadata,
        "features": dict(zip(trained.feature_names, X[0].tolist(), strict=True)),
        "audit_event": AuditEvent.objects.earliest("pk").pk,
    }
    return World(
        users=users,
        sessions=sessions,
        soc_token=token,
        model=model,
        previous=previous,
        production=production,
        staged=staged,
        testing=testing,
        pending=pending,
        incident=incidents[0],
        alert=alert,
        drift_run=drift_run,
        audit=audit,
        artifact_root=artifact_root,
        extra=extra,
    )


def seeded_world(django_db_blocker, tmp_path_factory, trained):
    """The body of a module-scoped `world` fixture: build the world in a transaction (and
    an artifact store) that is rolled back when the module ends."""
    from django.db import transaction
    from django.test import override_settings

    from registry.artifacts import booster_cache

    root = tmp_path_factory.mktemp("artifacts")
    with django_db_blocker.unblock(), override_settings(ARTIFACT_ROOT=root):
        booster_cache.clear()
        with transaction.atomic():
            yield build_world(trained, root)
            transaction.set_rollback(True)
        booster_cache.clear()


_handler: list[Any] = []


def client_for(world: World, persona: str, *, api: bool):
    """A client acting as the persona: the SOC service uses its token on the API,
    everyone else a session cookie made when the world was built.

    Every client shares one request handler: building one loads the middleware, and
    WhiteNoise then indexes every static file (about a third of a second).
    """
    from http.cookies import SimpleCookie

    from rest_framework.test import APIClient

    client = APIClient()
    if not _handler:
        _handler.append(client.handler)
    client.handler = _handler[0]
    if persona == "soc" and api:
        client.credentials(HTTP_AUTHORIZATION=f"Token {world.soc_token}")
    elif persona != "anon":
        client.cookies = SimpleCookie()
        client.cookies.load({k: m.value for k, m in world.sessions[persona].items()})
    return client
