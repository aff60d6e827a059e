"""Fuzz the REST API from its own OpenAPI schema, as every role and anonymously.

Schemathesis generates requests (valid and invalid) for every operation of the schema
the app serves at /api/schema/ and sends them over HTTP to a live server. Every
response must not be a 5xx and must match what the schema documents: status code,
content type and body. A rejected write (4xx) must store nothing: the main tables keep
their row counts and versions, approval requests and alerts their state; the only rows
it may add are the audit events a refusal records on purpose (REFUSAL_RECORDS).

A model with versions in production, staging and training, logged predictions with
verdicts, an alert, a drift run and a fairness audit are seeded once for the module, and
their names, ids and incident ids are mixed into the generated paths, queries and
bodies, so that part of the requests reach real objects instead of 404s. The data
accumulates over the run like it would on a server (an approver's request may promote a
version that a later request reads).
"""

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MODEL = "threat-detector"
ROLES = ["soc_service", "ml_engineer", "approver", "analyst", "auditor", "anonymous"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def served_schema() -> dict:
    """The document /api/schema/ serves (read through the app at collection time, when
    no server runs yet; test_the_live_server_serves_the_fuzzed_schema compares)."""
    from django.test import Client

    response = Client(HTTP_HOST="localhost").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


SCHEMA = served_schema()
schema = schemathesis.openapi.from_dict(
    SCHEMA,
    config=schemathesis.Config.from_dict(
        {
            # Credentials come from the role under test, never from generated headers.
            # The coverage phase is off: its boundary cases (hundreds per operation, not
            # bounded by max_examples) would take the run far past its time budget.
            "generation": {"with-security-parameters": False, "deterministic": True},
            "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}},
        }
    ),
)


@dataclass
class Seed:
    """The live server, the role tokens and the real objects requests may point at."""

    url: str
    tokens: dict
    version_ids: list
    semvers: list
    incidents: list
    request_ids: list
    alert_ids: list
    run_ids: list
    audit_ids: list
    features: list

    def headers(self, role: str) -> dict:
        token = self.tokens.get(role)
        return {"Authorization": f"Token {token}"} if token else {}


SEED: Seed | None = None


def _current_seed() -> Seed:
    """SEED, which the module's fixture sets before any strategy is drawn."""
    assert SEED is not None, "a strategy was drawn before the server was seeded"
    return SEED


def seeded(attribute: str) -> st.SearchStrategy:
    """One of the seeded values; deferred, as strategies are built at collection."""
    return st.deferred(lambda: st.sampled_from(getattr(SEED, attribute)))


PATH_VALUES = {
    "/api/ml/explain/{incident_id}": {"incident_id": seeded("incidents")},
    "/api/v1/alerts/{id}/": {"id": seeded("alert_ids")},
    "/api/v1/alerts/{id}/acknowledge/": {"id": seeded("alert_ids")},
    "/api/v1/alerts/{id}/resolve/": {"id": seeded("alert_ids")},
    "/api/v1/drift-runs/{id}/": {"id": seeded("run_ids")},
    "/api/v1/fairness/audits/{id}/": {"id": seeded("audit_ids")},
}


def real_path_values(path: str) -> dict | None:
    if "{name}" in path:
        return {"name": st.just(MODEL)}
    if path.startswith("/api/v1/versions/{id}/"):
        return {"id": seeded("version_ids")}
    return PATH_VALUES.get(path)


LABELS = st.sampled_from(["threat", "benign", "true_positive", "false_positive", "1", "0"])


def _prediction() -> st.SearchStrategy:
    features = st.deferred(
        lambda: st.fixed_dictionaries(
            {name: st.floats(0, 1e4) for name in _current_seed().features}
        )
    )
    return st.fixed_dictionaries(
        {
            "request_id": st.one_of(seeded("request_ids"), st.uuids().map(str)),
            "model": st.just(MODEL),
            "entity": st.sampled_from(["host-1", "host-2", "user-3"]),
            "features": features,
            "score": st.floats(0, 1),
        },
        optional={
            "version": seeded("semvers"),
            "incident_id": seeded("incidents"),
            "attributes": st.fixed_dictionaries({"geo_region": st.sampled_from(["EU", "NA"])}),
        },
    )


def _verdict() -> st.SearchStrategy:
    return st.one_of(
        st.fixed_dictionaries({"request_id": seeded("request_ids"), "label": LABELS}),
        st.fixed_dictionaries(
            {"incident_id": seeded("incidents"), "label": LABELS},
            optional={"note": st.text(max_size=40)},
        ),
    )


# Bodies that name seeded objects, beside the ones generated from the schema.
BODIES = {
    ("POST", "/api/v1/predictions/"): st.fixed_dictionaries(
        {"predictions": st.lists(_prediction(), min_size=1, max_size=3)}
    ),
    ("POST", "/api/v1/feedback/"): st.fixed_dictionaries(
        {"verdicts": st.lists(_verdict(), min_size=1, max_size=3)}
    ),
    ("PUT", "/api/v1/models/{name}/traffic/"): st.fixed_dictionaries(
        {
            "challenger": st.one_of(st.none(), seeded("semvers")),
            "challenger_percentage": st.sampled_from(["0", "10", "50.00"]),
            "shadows": st.lists(seeded("semvers"), max_size=2, unique=True),
        }
    ),
    ("POST", "/api/v1/fairness/audits/"): st.fixed_dictionaries(
        {"version": seeded("version_ids"), "source": st.sampled_from(["evaluation", "logged"])}
    ),
}


# Query strings that a valid call needs, beside the generated ones.
QUERIES = {
    "/api/v1/models/{name}/route/": st.fixed_dictionaries(
        {"entity": st.sampled_from(["host-1", "user-3"])}
    ),
    "/api/ml/explain/{incident_id}": st.fixed_dictionaries(
        {}, optional={"top_k": st.integers(1, 50)}
    ),
}


@schema.hook
def before_generate_query(context, strategy):
    real = QUERIES.get(context.operation.path)
    return st.one_of(real, strategy) if real is not None else strategy


@schema.hook
def before_generate_body(context, strategy):
    real = BODIES.get((context.operation.method.upper(), context.operation.path))
    return st.one_of(real, strategy) if real is not None else strategy


@schema.hook
def before_generate_path_parameters(context, strategy):
    real = real_path_values(context.operation.path)
    return st.one_of(st.fixed_dictionaries(real), strategy) if real else strategy


def _user(username: str, role: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=username, password="x" * 20)
    user.groups.add(Group.objects.get(name=role))
    return user


def _seed(url: str, trained) -> Seed:
    from django.utils import timezone
    from knox.models import AuthToken

    from core.roles import roles_sync
    from fairness.services import fairness_audit_create
    from monitoring.alerts import alert_raise
    from monitoring.drift_jobs import drift_run_create
    from monitoring.models import DriftRun
    from registry import services
    from tests import factories

    roles_sync()
    people = {
        "soc_service": _user("soc_backend", "SOC service"),
        "ml_engineer": _user("mira_engineer", "ML engineer"),
        "approver": _user("alex_approver", "Approver"),
        "analyst": _user("ana_analyst", "Analyst"),
        "auditor": _user("otto_auditor", "Auditor"),
    }
    engineer, approver = people["ml_engineer"], people["approver"]

    def register(semver, *, to="training"):
        return factories.version(trained, user=engineer, model=MODEL, semver=semver, to=to)

    production = register("1.0.0", to="staging")
    production.model.fairness_gate = False
    production.model.save(update_fields=["fairness_gate"])
    request = services.approval_request_create(version=production, actor=engineer)
    services.approval_decide(request=request, approver=approver, decision="approve")
    production = services.version_transition(version=production, to="production", actor=approver)
    candidate = register("1.1.0", to="staging")
    services.approval_request_create(version=candidate, actor=engineer, notes="retrained")
    versions = [production, candidate, register("1.2.0")]
    tokens = {role: AuthToken.objects.create(user=u, expiry=None)[1] for role, u in people.items()}

    now = timezone.now()
    items = [
        {
            "request_id": f"req-{i}",
            "model": MODEL,
            "incident_id": f"INC-{i}",
            "entity": f"host-{i % 7}",
            "features": {
                name: float((i + j) % 4) for j, name in enumerate(production.feature_names)
            },
            "score": round(0.03 * i, 3),
            "attributes": {"geo_region": ["EU", "NA", "APAC"][i % 3]},
            "timestamp": (now - timedelta(minutes=90 - i)).isoformat(),
        }
        for i in range(30)
    ]
    _post(url, "predictions", {"predictions": items}, tokens["soc_service"], 201)
    verdicts = [{"incident_id": f"INC-{i}", "label": ["benign", "threat"][i % 2]} for i in range(8)]
    _post(url, "feedback", {"verdicts": verdicts}, tokens["analyst"], 200)

    alert = alert_raise(
        model=production.model,
        version=production,
        kind="drift",
        severity="warning",
        dedupe_key=f"drift:{production.pk}:bytes_out",
        title="bytes_out drifted",
    )
    run = drift_run_create(
        model=production.model, trigger=DriftRun.Trigger.API, user=people["analyst"], enqueue=False
    )
    audit = fairness_audit_create(version=production, requested_by=people["auditor"], enqueue=False)
    return Seed(
        url=url,
        tokens=tokens,
        version_ids=[v.pk for v in versions],
        semvers=[v.version for v in versions],
        incidents=[item["incident_id"] for item in items],
        request_ids=[item["request_id"] for item in items],
        alert_ids=[alert.pk],
        run_ids=[run.pk],
        audit_ids=[audit.pk],
        features=list(production.feature_names),
    )


def _post(url: str, endpoint: str, body: dict, token: str, expected: int) -> None:
    answer = requests.post(
        f"{url}/api/v1/{endpoint}/",
        json=body,
        headers={"Authorization": f"Token {token}"},
        timeout=60,
    )
    assert answer.status_code == expected, answer.text


@pytest.fixture(scope="module")
def fuzz(django_db_setup, django_db_blocker, trained, tmp_path_factory):
    """A live server over data committed once for the module; the tables are flushed
    afterwards, as after any transactional test.

    pytest-django's live_server fixture would flush after every test, and the fuzz
    test is one test per operation and role."""
    global SEED
    from django.core.management import call_command
    from django.test import override_settings
    from pytest_django.live_server_helper import LiveServer

    from core.roles import roles_sync
    from registry.artifacts import booster_cache

    with (
        django_db_blocker.unblock(),
        override_settings(ARTIFACT_ROOT=tmp_path_factory.mktemp("fuzz-artifacts")),
    ):
        booster_cache.clear()
        server = LiveServer("localhost")
        try:
            SEED = _seed(server.url, trained)
            yield SEED
        finally:
            server.stop()
            SEED = None
            booster_cache.clear()
            call_command("flush", interactive=False, verbosity=0)
            roles_sync()


@pytest.fixture
def db(fuzz):
    """Replaces pytest-django's `db` in this module. Its name makes pytest-django set up
    the test database; unlike the original it opens no transaction around the test. The
    live server's requests commit on their own connections, and SQLite (IMMEDIATE
    transactions) would make them wait for a transaction held open by the test."""
    return fuzz


@pytest.fixture(params=ROLES)
def role(request):
    return request.param


def snapshot() -> dict:
    """Row counts of the main tables, audit events by action, and the state of versions,
    approval requests and alerts."""
    from django.db.models import Count

    from core.models import AuditEvent
    from fairness.models import FairnessAudit
    from monitoring.models import Alert, DriftRun, FeedbackEvent, PredictionLog
    from registry.models import (
        ApprovalDecision,
        ApprovalRequest,
        MLModelVersion,
        TrafficSplit,
    )

    tables = (
        MLModelVersion,
        ApprovalRequest,
        ApprovalDecision,
        TrafficSplit,
        PredictionLog,
        FeedbackEvent,
        Alert,
        DriftRun,
        FairnessAudit,
    )
    state: dict[str, Any] = {m.__name__: m.objects.count() for m in tables}
    state["labelled predictions"] = PredictionLog.objects.filter(label__isnull=False).count()
    state["versions"] = sorted(
        MLModelVersion.objects.values_list("pk", "status", "traffic_percentage", "approved_by_id")
    )
    state["approval requests"] = sorted(ApprovalRequest.objects.values_list("pk", "status"))
    state["alerts"] = sorted(Alert.objects.values_list("pk", "status"))
    events = AuditEvent.objects.values("action").annotate(n=Count("id"))
    state["audit"] = {e["action"]: e["n"] for e in events}
    return state


# What a refusal deliberately leaves behind: the audit event of a refused call
# (govsite/api.py, registry/api.py RouteView), of a refused self-approval, and an
# approval that expired because its evidence changed (it stays expired, see
# registry.services.records_failures).
REFUSAL_RECORDS = {
    403: {"permission.denied", "approval.self_approval_refused"},
    409: {"approval.expired"},
}


def assert_nothing_stored(before: dict, after: dict, status: int, what: str) -> None:
    recorded = {
        action: n - before["audit"].get(action, 0)
        for action, n in after["audit"].items()
        if n != before["audit"].get(action, 0)
    }
    allowed = REFUSAL_RECORDS.get(status, set())
    assert all(a in allowed and n == 1 for a, n in recorded.items()), (
        f"{what}: audit events {recorded}"
    )
    changed = {key for key in before if key != "audit" and before[key] != after[key]}
    if "approval.expired" in recorded:
        changed -= {"versions", "approval requests"}
    assert not changed, f"{what}: changed {sorted(changed)}: " + "; ".join(
        f"{key}: {before[key]} -> {after[key]}" for key in sorted(changed)
    )


def test_the_live_server_serves_the_fuzzed_schema(fuzz, db):
    answer = requests.get(f"{fuzz.url}/api/schema/", params={"format": "json"}, timeout=60)
    assert answer.status_code == 200
    assert answer.json() == SCHEMA


def test_the_snapshot_sees_what_the_server_stores(fuzz, db):
    """The no-store check can fail: a write the server commits shows in the snapshot."""
    before = snapshot()
    verdict = {"verdicts": [{"request_id": fuzz.request_ids[-1], "label": "benign"}]}
    _post(fuzz.url, "feedback", verdict, fuzz.tokens["analyst"], 200)
    after = snapshot()
    assert after["FeedbackEvent"] == before["FeedbackEvent"] + 1
    with pytest.raises(AssertionError, match=r"FeedbackEvent|verdict\.recorded"):
        assert_nothing_stored(before, after, 400, "a verdict")


@schema.parametrize()
@hypothesis.settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "6")),  # bench/fuzz_api.sh raises it
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_the_api_keeps_its_documented_contract(case, role, fuzz, db):
    # The seed was committed for the module and the server commits what it stores, so
    # snapshot() reads it all (no transaction is open around the test, see db()).
    headers = fuzz.headers(role)
    write = case.method.upper() in WRITES
    before = snapshot() if write else None
    response = case.call(base_url=fuzz.url, headers=headers, timeout=60)
    case.validate_response(response, checks=CHECKS, headers=headers)
    if write and 400 <= response.status_code < 500:
        what = f"{case.method} {case.formatted_path} as {role} answered {response.status_code}"
        assert_nothing_stored(before, snapshot(), response.status_code, what)
