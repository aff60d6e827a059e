"""Monitoring pages: role checks, dashboard content, alert actions, run-now, run status."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.alerts import alert_raise
from monitoring.drift_jobs import drift_run_create, drift_run_execute
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
ALL = VIEWERS + ["nobody"]


@pytest.fixture
def alert(model):
    return alert_raise(
        model=model, kind="drift", severity="critical", dedupe_key="k", title="bytes_out drifted"
    )


def as_user(client, request, who):
    client.force_login(request.getfixturevalue(who))
    return client


@pytest.mark.parametrize("who", ALL)
def test_pages_need_the_monitoring_view(client, request, who, model, alert):
    run = drift_run_create(model=model, trigger="ui", enqueue=False)
    as_user(client, request, who)
    for url in ("/monitoring/", "/monitoring/threat/", f"/monitoring/runs/{run.pk}/"):
        assert client.get(url).status_code == (200 if who in VIEWERS else 403), url


def test_anonymous_visitors_go_to_the_login_page(client, model):
    response = client.get("/monitoring/threat/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who", ALL)
def test_alert_forms_need_manage_alert(client, request, who, alert):
    as_user(client, request, who)
    response = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/")
    alert.refresh_from_db()
    if who in ("approver", "analyst"):
        assert response.status_code == 302 and alert.status == "acknowledged"
        client.post(f"/monitoring/alerts/{alert.pk}/resolve/")
        alert.refresh_from_db()
        assert alert.status == "resolved" and alert.resolved_by == request.getfixturevalue(who)
    else:
        assert response.status_code == 403 and alert.status == "open"


def test_alert_actions_are_post_only(client, analyst, alert):
    client.force_login(analyst)
    assert client.get(f"/monitoring/alerts/{alert.pk}/acknowledge/").status_code == 405
    assert Alert.objects.get(pk=alert.pk).status == "open"


@pytest.mark.parametrize("who", ALL)
def test_run_now_needs_run_drift(client, request, who, model):
    as_user(client, request, who)
    response = client.post("/monitoring/threat/run/")
    if who in ("ml_engineer", "approver"):
        assert response.status_code == 302
        run = DriftRun.objects.get()
        assert run.trigger == "ui" and run.status == "queued"
    else:
        assert response.status_code == 403 and not DriftRun.objects.exists()


def test_controls_show_only_to_those_who_may_use_them(client, auditor, approver, model, alert):
    client.force_login(auditor)
    page = client.get("/monitoring/threat/").content.decode()
    assert "Acknowledge</button>" not in page and 'data-testid="run-now"' not in page
    client.force_login(approver)
    page = client.get("/monitoring/threat/").content.decode()
    assert "Acknowledge</button>" in page and 'data-testid="run-now"' in page


def test_the_dashboard_reads_stored_results_only(client, analyst, register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500))
    log_window(version, rows=slice(1500, 3000), start=T0 + HOUR, scenario=drifted_scenario())
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + 2 * HOUR, trigger="cli", enqueue=False
    )
    drift_run_execute(run_id=run.pk)
    client.force_login(analyst)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/monitoring/threat/")
    assert not any("monitoring_predictionlog" in q["sql"] for q in queries.captured_queries)
    figures = response.context["figures"]
    assert set(figures) >= {"score", "drift", "heatmap", "performance", "alerts", "histogram"}
    heat = figures["heatmap"]["data"][0]
    assert len(heat["x"]) == 2 and "bytes_out" in heat["y"] and "score" in heat["y"]
    row = heat["y"].index("bytes_out")
    assert heat["z"][row][1] > 0.25 > heat["z"][row][0]
    # The default histogram shows a drifted feature in the drifted window.
    assert response.context["selection"]["feature"] in ("bytes_out", "geo_velocity")
    assert response.context["selection"]["result"].window_start == T0 + HOUR
    chosen = client.get(
        "/monitoring/threat/?feature=auth_method&window=" + T0.isoformat().replace("+", "%2B")
    )
    hist = chosen.context["figures"]["histogram"]
    assert hist["data"][0]["x"][0] in ("password", "sso", "mfa", "key")
    assert chosen.context["selection"]["result"].window_start == T0
