"""Monitoring API: role checks on every endpoint, filters, bad input, stored results only."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import AuditEvent
from monitoring.alerts import alert_raise
from monitoring.drift_jobs import drift_window_compute
from monitoring.models import Alert, DriftRun
from monitoring.tests.factories import (
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
HOUR = timedelta(hours=1)
VIEWERS = ["ml_engineer", "approver", "analyst", "auditor", "soc_service"]
MANAGERS = {"approver", "analyst"}
RUNNERS = {"ml_engineer", "approver"}
ALL = VIEWERS + ["nobody"]


@pytest.fixture
def alert(model):
    return alert_raise(
        model=model, kind="drift", severity="warning", dedupe_key="drift:x:bytes_out", title="t"
    )


def client_for(request, api_as, who):
    return api_as(request.getfixturevalue(who))


@pytest.mark.parametrize("who", ALL)
def test_reads_need_the_monitoring_view(request, api_as, who, model, alert):
    client = client_for(request, api_as, who)
    allowed = who in VIEWERS
    for url in (
        "/api/v1/alerts/",
        f"/api/v1/alerts/{alert.pk}/",
        "/api/v1/models/threat/drift/",
        "/api/v1/models/threat/performance/",
    ):
        response = client.get(url)
        assert response.status_code == (200 if allowed else 403), url
    if not allowed:
        assert response.json()["error"]
        assert AuditEvent.objects.filter(action="permission.denied").exists()


def test_anonymous_callers_get_401(api_as, model, alert):
    for url in ("/api/v1/alerts/", "/api/v1/models/threat/drift/"):
        assert api_as().get(url).status_code == 401
    assert api_as().post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 401


@pytest.mark.parametrize("who", ALL)
def test_acknowledge_and_resolve_need_manage_alert(request, api_as, who, alert):
    client = client_for(request, api_as, who)
    response = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")
    if who not in MANAGERS:
        assert response.status_code == 403
        assert Alert.objects.get(pk=alert.pk).status == "open"
        return
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    response = client.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"note": "fixed"}, format="json")
    assert response.json()["status"] == "resolved"
    again = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json")
    assert again.status_code == 409 and again.json()["details"]["status"] == "resolved"


@pytest.mark.parametrize("who", ALL)
def test_runs_need_run_drift(request, api_as, who, model):
    client = client_for(request, api_as, who)
    response = client.post("/api/v1/models/threat/drift/run/", {}, format="json")
    if who not in RUNNERS:
        assert response.status_code == 403 and not DriftRun.objects.exists()
        return
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["windows_total"] == 24 and body["trigger"] == "api"
    status = client.get(f"/api/v1/drift-runs/{body['id']}/")
    assert status.status_code == 200 and status.json()["progress"] == 0


def test_bad_input_is_a_400_and_stores_nothing(api_as, approver, model, alert):
    client = api_as(approver)
    bad = client.get("/api/v1/alerts/?status=burning")
    assert bad.status_code == 400 and "status" in bad.json()["details"]
    assert client.get("/api/v1/models/threat/drift/?start=yesterday").status_code == 400
    order = client.get(
        "/api/v1/models/threat/drift/?start=2026-03-02T05:00:00Z&end=2026-03-02T01:00:00Z"
    )
    assert order.status_code == 400 and "start" in order.json()["details"]
    run = client.post(
        "/api/v1/models/threat/drift/run/",
        {"start": "2026-03-02T05:00:00Z", "end": "2026-03-02T05:00:00Z"},
        format="json",
    )
    assert run.status_code == 400 and run.json()["details"]["field"] == "start"
    huge = client.post(
        "/api/v1/models/threat/drift/run/",
        {"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        format="json",
    )
    assert huge.status_code == 400
    assert client.post("/api/v1/models/nope/drift/run/", {}, format="json").status_code == 404
    assert client.get("/api/v1/models/threat/drift/?version=9.9.9").status_code == 404
    assert not DriftRun.objects.exists()


def test_a_run_over_the_whole_calendar_is_refused_before_its_windows_are_listed(
    api_as, approver, model
):
    began = time.perf_counter()
    response = api_as(approver).post(
        "/api/v1/models/threat/drift/run/",
        {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"},
        format="json",
    )
    # Listing 87 million hourly windows first took minutes and gigabytes.
    assert time.perf_counter() - began < 10
    assert response.status_code == 400
    span = datetime(9999, 12, 31, tzinfo=UTC) - datetime(1, 1, 1, tzinfo=UTC)
    assert response.json()["details"]["windows"] == span // timedelta(hours=1)
    assert not DriftRun.objects.exists()


def test_alert_filters(api_as, analyst, model, alert):
    alert_raise(model=model, kind="performance", severity="critical", dedupe_key="p", title="p")
    client = api_as(analyst)
    assert client.get("/api/v1/alerts/?severity=critical").json()["count"] == 1
    assert client.get("/api/v1/alerts/?kind=drift").json()["results"][0]["id"] == alert.pk
    assert client.get("/api/v1/alerts/?status=active&model=threat").json()["count"] == 2
    assert client.get("/api/v1/alerts/?status=resolved").json()["count"] == 0
    assert client.get("/api/v1/alerts/?model=other").json()["count"] == 0


def test_drift_results_come_from_storage_not_the_log(api_as, analyst, register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    client = api_as(analyst)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/v1/models/threat/drift/?version=1.0.0").json()
    assert not any("monitoring_predictionlog" in q["sql"] for q in queries.captured_queries)
    (window,) = body["results"]
    assert window["version"] == "1.0.0" and window["n_rows"] == 1500 and window["drift"] is True
    assert window["features"]["bytes_out"]["drifted"] is True
    assert (
        "psi" in window["features"]["bytes_out"]
        and "proportions" not in window["features"]["bytes_out"]
    )
    full = client.get("/api/v1/models/threat/drift/?detail=full").json()["results"][0]
    assert "proportions" in full["features"]["bytes_out"]["statistics"]
    later = client.get("/api/v1/models/threat/drift/?start=2026-03-02T01:00:00Z").json()
    assert later["count"] == 0
