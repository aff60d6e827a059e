"""/metrics: Prometheus exposition of stored drift, alerts, ingest counts and job times."""

from datetime import timedelta

import pytest

from monitoring.alerts import alert_raise
from monitoring.drift_jobs import drift_run_create, drift_run_execute
from monitoring.tests.factories import (
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
HOUR = timedelta(hours=1)


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_it_exposes_drift_alerts_ingest_and_jobs(client, register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + HOUR, trigger="cli", enqueue=False
    )
    drift_run_execute(run_id=run.pk)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    values = samples(text)
    label = 'model="threat",version="1.0.0"'
    assert values[f'govsite_drift_psi{{{label},feature="bytes_out"}}'] > 0.25
    assert values[f'govsite_drift_feature_drifted{{{label},feature="bytes_out"}}'] == 1
    assert values[f'govsite_drift_feature_drifted{{{label},feature="dns_entropy"}}'] == 0
    assert f'govsite_drift_js_distance{{{label},feature="auth_method"}}' in values
    assert values[f"govsite_drift_window_rows{{{label}}}"] == 1500
    assert values[f'govsite_predictions_logged_total{{{label},role="champion"}}'] == 1500
    assert values['govsite_alerts_active{model="threat",severity="critical",status="open"}'] >= 2
    assert values['govsite_drift_runs_total{model="threat",status="succeeded"}'] == 1
    assert values['govsite_drift_run_duration_seconds_count{model="threat"}'] == 1
    assert "# TYPE govsite_drift_run_duration_seconds summary" in text


def test_label_values_are_escaped(client, register):
    version = register("1.0.0")
    alert_raise(model=version.model, kind="x", severity="info", dedupe_key="q", title="t")
    text = client.get("/metrics").content.decode()
    assert 'govsite_alerts_active{model="threat",severity="info",status="open"} 1' in text


def test_access_is_restricted_to_token_networks_or_viewers(client, settings, make_user):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.METRICS_TOKEN = "s3cret-token"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    client.force_login(make_user("Auditor", "otto"))
    assert client.get("/metrics").status_code == 200
    client.force_login(make_user(None, "nora"))
    assert client.get("/metrics").status_code == 401
