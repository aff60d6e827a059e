import pytest

from core.models import AuditEvent
from fairness.models import FairnessAudit
from fairness.services import fairness_audit_execute_now
from fairness.tests.conftest import log_traffic, period_of, traffic

pytestmark = pytest.mark.django_db

LIST = "/api/v1/fairness/audits/"


@pytest.fixture
def version(register_trained, fair_training):
    return register_trained(fair_training)


def test_an_engineer_requests_an_audit_and_reads_it_when_done(api_as, ml_engineer, version):
    response = api_as(ml_engineer).post(
        LIST, {"version": version.pk, "attributes": ["geo_region"]}, format="json"
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["requested_by"] == "mira_engineer"
    assert body["source"] == "evaluation" and body["url"] == f"/fairness/audits/{body['id']}/"
    fairness_audit_execute_now(audit_id=body["id"])
    detail = api_as(ml_engineer).get(f"{LIST}{body['id']}/").json()
    assert detail["status"] == "complete" and detail["verdict"] == "pass"
    assert {g["name"] for g in detail["result"]["groups"]} == {"APAC", "EU", "LATAM", "MEA", "NA"}
    listed = api_as(ml_engineer).get(LIST, {"version": version.pk}).json()
    assert [a["id"] for a in listed["results"]] == [body["id"]]


def test_a_logged_audit_takes_a_period(api_as, approver, version):
    events = traffic(2000, proxy=0.0)
    log_traffic(version, events)
    start, end = period_of(events)
    response = api_as(approver).post(
        LIST,
        {
            "version": version.pk,
            "source": "logged",
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 202, response.json()
    audit = FairnessAudit.objects.get()
    assert (audit.period_start, audit.period_end) == (start, end)


@pytest.mark.parametrize(
    "payload, field",
    [
        ([1, 2], "non_field_errors"),
        ({}, "version"),
        ({"version": "x"}, "version"),
        ({"version": 999999}, "field"),
        ({"source": "web"}, "source"),
        ({"source": "logged"}, "field"),
        (
            {
                "source": "logged",
                "period_start": "2025-01-02T00:00Z",
                "period_end": "2025-01-01T00:00Z",
            },
            "field",
        ),
        ({"source": "logged", "period_start": "soon", "period_end": "later"}, "period_start"),
        (
            {
                "source": "logged",
                "period_start": "2030-01-01T00:00Z",
                "period_end": "2030-02-01T00:00Z",
            },
            "field",
        ),
        ({"attributes": []}, "attributes"),
        ({"attributes": "geo_region"}, "attributes"),
        ({"attributes": ["geo region"]}, "field"),
        ({"attributes": ["a", "b", "c", "d"]}, "attributes"),
        ({"attributes": ["device_os"]}, "field"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_input_is_a_400_and_nothing_is_stored(api_as, ml_engineer, version, payload, field):
    if isinstance(payload, dict) and field != "version":
        payload = {"version": version.pk, **payload}
    before = AuditEvent.objects.count()
    response = api_as(ml_engineer).post(LIST, payload, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["error"] and field in body["details"], body
    assert FairnessAudit.objects.count() == 0
    assert AuditEvent.objects.count() == before


def test_role_checks(api_as, make_user, version, ml_engineer):
    audit_id = api_as(ml_engineer).post(LIST, {"version": version.pk}, format="json").json()["id"]
    detail = f"{LIST}{audit_id}/"
    anonymous = api_as(None)
    for method, url in [("get", LIST), ("get", detail), ("post", LIST)]:
        assert getattr(anonymous, method)(url, {}, format="json").status_code == 401
    expectations = {
        "Auditor": {"get": 200, "post": 403},
        "Approver": {"get": 200, "post": 202},
        "Analyst": {"get": 403, "post": 403},
        "SOC service": {"get": 403, "post": 403},
    }
    for role, expected in expectations.items():
        client = api_as(make_user(role))
        assert client.get(LIST).status_code == expected["get"], role
        assert client.get(detail).status_code == expected["get"], role
        response = client.post(LIST, {"version": version.pk}, format="json")
        assert response.status_code == expected["post"], role
    # analyst and SOC service: 3 refusals each; auditor: the POST
    assert AuditEvent.objects.filter(action="permission.denied").count() == 2 * 3 + 1
