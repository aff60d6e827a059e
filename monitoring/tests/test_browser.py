"""The drift dashboard in headless Chromium: charts rendered by plotly.js, alert actions."""

from datetime import timedelta

import pytest

from monitoring.drift_jobs import drift_run_create, drift_run_execute
from monitoring.models import Alert
from monitoring.tests.factories import (
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("hourly_windows"),
]
HOUR = timedelta(hours=1)
CHARTS = ("drift", "heatmap", "histogram", "score_histogram", "score", "performance", "alerts")


def test_an_analyst_opens_the_dashboard_and_acknowledges_an_alert(register, analyst, login, page):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500))
    log_window(version, rows=slice(1500, 3000), start=T0 + HOUR, scenario=drifted_scenario())
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + 2 * HOUR, trigger="cli", enqueue=False
    )
    drift_run_execute(run_id=run.pk)

    login(analyst)
    page.goto("/monitoring/")
    page.click("a[href='/monitoring/threat/']")
    for chart in CHARTS:
        page.wait_for_selector(f"#chart-{chart}.js-plotly-plot .main-svg")
    # The heat map drew its cells and the histogram its two bar series.
    assert page.locator("#chart-heatmap .hm, #chart-heatmap image").count() >= 1
    assert page.locator("#chart-histogram .barlayer .trace").count() == 2
    assert "bytes_out" in page.text_content("[data-testid=alerts]")

    alert = Alert.objects.filter(status="open").order_by("pk").first()
    page.click(f"tr[data-alert='{alert.pk}'] button:has-text('Acknowledge')")
    page.wait_for_selector(".messages .success")
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by == analyst
