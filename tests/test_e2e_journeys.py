"""End-to-end journey in headless Chromium against the live server.

A retrained version goes all the way through the product, each person using it the way
they do in production:

1. the ML engineer registers 1.1.0 over the REST API (multipart upload, session login)
   and asks for approval;
2. the approver reviews the evidence in the Django admin, approves, moves 1.1.0 to
   staging and gives it 10 % of the traffic in the split editor;
3. the SOC backend (service token) logs drifted traffic and verdicts over HTTP, and a
   drift run on the real Celery worker raises an alert;
4. an analyst reads a high-risk incident's SHAP waterfall and sees the open alert on the
   drift dashboard;
5. an auditor reads the compliance report of 1.1.0 and exports the audit trail.

A full-page screenshot of every step lands in SCREENSHOT_DIR (var/screenshots by default).
"""

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import xgboost as xgb
from django.core.management import call_command
from django.utils import timezone

from conftest import PASSWORD
from core.models import AuditEvent
from monitoring.drift_jobs import drift_run_create, window_floor
from monitoring.models import Alert, DriftResult, DriftRun, PredictionLog
from registry import services, synthetic
from registry.models import (
    ApprovalRequest,
    Experiment,
    MLModelVersion,
    TrafficSplit,
)
from registry.registration import MODEL_CARD, evaluation_npz
from registry.routing import PublishedRouter

if TYPE_CHECKING:
    from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MODEL = "threat"
CANDIDATE = "1.1.0"
TRAFFIC = 400  # events the SOC backend logs: enough for one drift window, quick to post
DRIFT = synthetic.Scenario(drifts=(synthetic.Drift.sudden("bytes_out", 1.5, at=0.0),))
# The small test models rarely score above 0.5; the model's policy calls 0.3 high risk.
HIGH_RISK = 0.3
APPROVAL_NOTES = "Evidence reviewed; start 1.1.0 on 10 % of the traffic"
SHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[1] / "var/screenshots"
)


def shoot(page, name: str) -> None:
    SHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOT_DIR / f"journey-{name}.png"), full_page=True)


@dataclass
class Journey:
    """What the steps hand on to each other."""

    base_url: str
    open_as: "Callable[[User], Any]"  # -> a logged-in Playwright page
    engineer: "User"
    approver: "User"
    analyst: "User"
    auditor: "User"
    champion: MLModelVersion
    served: dict = field(default_factory=dict)  # request_id -> (version id, arm)
    # Set by the steps, in order; reading one before its step ran is an AttributeError.
    candidate: MLModelVersion = field(init=False)
    approval: ApprovalRequest = field(init=False)
    approver_page: Any = field(init=False)
    window: tuple[datetime, datetime] = field(init=False)
    events: synthetic.Events = field(init=False)
    alert: Alert = field(init=False)


@pytest.fixture(scope="module")
def retrained():
    """1.1.0: the detector retrained on fresh events (a different artifact from 1.0.0)."""
    from registry.training import train

    return train(synthetic.generate(4000, seed=11), num_boost_round=15, seed=11)


@pytest.fixture
def champion(approved, approver, settings):
    """threat 1.0.0 in production: where the journey starts."""
    # Compare each hourly window on its own (the default span is the trailing day).
    settings.DRIFT_SPAN_MINUTES = 60
    version = approved("1.0.0")
    version = services.version_transition(version=version, to="production", actor=approver)
    model = version.model
    model.experiment_salt = "journey"  # a fixed salt makes the A/B assignment repeatable
    model.explain_threshold = HIGH_RISK
    model.save(update_fields=["experiment_salt", "explain_threshold"])
    return version


@pytest.fixture
def open_as(browser, live_server):
    """open_as(user) -> a page in a fresh browser context, logged in through the form."""
    contexts = []

    def open_as(user):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1400, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20000)
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=current-user]")
        return page

    yield open_as
    for context in contexts:
        context.close()


def test_a_retrained_version_goes_from_registration_to_the_auditors_export(
    champion,
    retrained,
    ml_engineer,
    approver,
    analyst,
    auditor,
    open_as,
    live_server,
    celery_worker,
    browser,
):
    journey = Journey(
        base_url=live_server.url,
        open_as=open_as,
        engineer=ml_engineer,
        approver=approver,
        analyst=analyst,
        auditor=auditor,
        champion=champion,
    )
    step_1_the_engineer_registers_and_asks_for_approval(journey, retrained)
    step_2_the_approver_approves_stages_and_splits_traffic(journey)
    step_3_the_soc_backend_logs_drifted_traffic_and_verdicts(journey, browser)
    step_4_an_analyst_reads_a_waterfall_and_the_drift_alert(journey)
    step_5_an_auditor_reads_the_report_and_exports_the_trail(journey)


# --- 1. ML engineer: REST API ----------------------------------------------------------


def step_1_the_engineer_registers_and_asks_for_approval(j: Journey, retrained) -> None:
    page = j.open_as(j.engineer)
    api = page.request  # shares the browser's session cookie: a person, not a token
    csrf = {"X-CSRFToken": _cookie(page, "csrftoken"), "Referer": j.base_url + "/"}
    metadata = retrained.registration_metadata()
    metadata.pop("validation_metrics")
    metadata.update(MODEL_CARD)
    metadata["evaluation_data"] = f"{retrained.validation_samples} held-out events"
    response = api.post(
        f"/api/v1/models/{MODEL}/versions/",
        headers=csrf,
        multipart={
            "version": CANDIDATE,
            "metadata": json.dumps(metadata),
            "artifact": {
                "name": "model.json",
                "mimeType": "application/json",
                "buffer": retrained.artifact_bytes("json"),
            },
            "evaluation": {
                "name": "evaluation.npz",
                "mimeType": "application/octet-stream",
                "buffer": evaluation_npz(retrained),
            },
        },
    )
    assert response.status == 201, response.text()
    body = response.json()
    assert (body["version"], body["status"]) == (CANDIDATE, "training")
    assert (body["registered_by"], body["parent"]) == (j.engineer.username, "1.0.0")
    base = f"/api/v1/versions/{body['id']}"
    response = api.post(f"{base}/transition/", headers=csrf, data={"to": "testing"})
    assert response.status == 200 and response.json()["status"] == "testing", response.text()
    response = api.post(
        f"{base}/request-approval/", headers=csrf, data={"notes": "retrained on fresh events"}
    )
    assert response.status == 201, response.text()
    request = response.json()
    assert request["status"] == "pending"
    assert request["evidence"]["production_version"] == "1.0.0"

    j.candidate = MLModelVersion.objects.get(model__name=MODEL, version=CANDIDATE)
    assert j.candidate.status == "testing" and j.candidate.registered_by == j.engineer
    assert j.candidate.model_hash != j.champion.model_hash
    j.approval = ApprovalRequest.objects.get(version=j.candidate)
    assert (j.approval.status, j.approval.requested_by) == ("pending", j.engineer)

    page.goto(f"/registry/versions/{j.candidate.pk}/")
    page.wait_for_selector("h1 .badge")
    assert page.text_content("h1 .badge").strip() == "testing"
    history = page.locator("section:has(h2:text('Approval history')) tbody tr")
    assert history.count() == 1
    assert "pending" in history.text_content() and j.engineer.username in history.text_content()
    shoot(page, "01-engineer-registers")


def _cookie(page, name: str) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == name)


# --- 2. Approver: Django admin ---------------------------------------------------------


def step_2_the_approver_approves_stages_and_splits_traffic(j: Journey) -> None:
    page = j.approver_page = j.open_as(j.approver)
    page.goto("/admin/")
    page.click("a[href='/admin/registry/approvalrequest/']")
    page.wait_for_selector("#result_list")
    page.click(f"a[href$='/approvalrequest/{j.approval.pk}/change/']")
    page.wait_for_selector("[data-testid=policy-checks]")
    assert "Metrics vs production (1.0.0)" in page.text_content("#content")
    checks = page.locator("[data-testid=policy-checks] li").all_text_contents()
    assert checks and all(c.startswith("✔") for c in checks), checks
    page.fill("textarea[name=notes]", APPROVAL_NOTES)
    page.click("[data-testid=approve]")
    page.wait_for_selector(".messagelist .success")
    assert "Request is now approved" in page.text_content(".messagelist")
    j.approval.refresh_from_db()
    j.candidate.refresh_from_db()
    assert j.approval.status == "approved"
    assert (j.candidate.approved_by, j.candidate.approval_notes) == (j.approver, APPROVAL_NOTES)
    shoot(page, "02a-approver-approves")

    # A challenger must be an approved staging version: move 1.1.0 on from testing.
    page.goto(f"/admin/registry/mlmodelversion/{j.candidate.pk}/change/")
    page.wait_for_selector(".object-tools")
    page.click(f"a[href$='/{j.candidate.pk}/lifecycle/stage/']")
    page.wait_for_selector("[data-testid=confirm]")
    page.fill("input[name=notes]", "ready for live traffic")
    page.click("[data-testid=confirm]")
    page.wait_for_selector(".messagelist .success")
    assert f"{CANDIDATE}: staging" in page.text_content(".messagelist")
    j.candidate.refresh_from_db()
    assert j.candidate.status == "staging" and j.candidate.is_approved()

    page.goto("/admin/registry/trafficsplit/")
    page.click(f"[data-testid=edit-{MODEL}]")
    page.wait_for_selector("[data-testid=split-form]")
    page.select_option("select[name=challenger]", str(j.candidate.pk))
    page.fill("input[name=challenger_percentage]", "10")
    page.fill("textarea[name=hypothesis]", "1.1.0 flags as precisely as 1.0.0")
    page.fill("input[name=notes]", "A/B test of the retrained detector")
    page.click("[data-testid=preview]")
    page.wait_for_selector("[data-testid=split-change]")
    change = page.text_content("[data-testid=split-change]")
    assert "90.00 %" in change and f"{CANDIDATE} 10.00 %" in change
    assert not TrafficSplit.objects.exists()
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=live-split]")
    assert page.text_content("[data-testid=champion-share]").strip() == "90.00"
    assert page.text_content("[data-testid=challenger-share]").strip() == "10.00"
    split = TrafficSplit.objects.get()
    assert (split.champion_id, split.champion_bp) == (j.champion.pk, 9000)
    assert (split.challenger_id, split.challenger_bp) == (j.candidate.pk, 1000)
    assert Experiment.objects.get(challenger=j.candidate).status == "running"
    shoot(page, "02b-approver-splits-traffic")


# --- 3. SOC backend: token, real HTTP; drift run on the worker -------------------------


def step_3_the_soc_backend_logs_drifted_traffic_and_verdicts(j: Journey, browser) -> None:
    out = io.StringIO()
    call_command("create_account", "soc_backend", "--role", "SOC service", "--service", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    soc = browser.new_context(
        base_url=j.base_url, extra_http_headers={"Authorization": f"Token {token}"}
    )
    try:
        _log_traffic(j, soc.request)
        _post_verdicts(j, soc.request)
    finally:
        soc.close()
    _run_drift(j)

    # The approver's experiment page counts what each arm served.
    page = j.approver_page
    page.reload()
    page.wait_for_selector("[data-testid=arms] tbody tr")
    for row in page.locator("[data-testid=arms] tbody tr").all():
        arm, version, predictions, flagged, labelled = row.locator("td").all_text_contents()[:5]
        rows = PredictionLog.objects.filter(version__version=version, role=arm)
        assert int(predictions) == rows.count() > 0
        assert int(flagged) == int(labelled) == rows.filter(decision=True).count()
    served = page.locator("[data-testid=arms] tbody td:nth-child(3)").all_text_contents()
    assert sum(int(n) for n in served) == TRAFFIC
    shoot(page, "03-soc-logs-traffic")


def _log_traffic(j: Journey, api) -> None:
    """Route each event as the published config says, score it with that version, log it."""
    response = api.get(f"/api/v1/models/{MODEL}/traffic/")
    assert response.ok, response.text()
    config = response.json()
    assert (config["champion"]["version"], config["champion"]["share_bp"]) == ("1.0.0", 9000)
    assert (config["challenger"]["version"], config["challenger"]["share_bp"]) == (CANDIDATE, 1000)
    router = PublishedRouter(config)
    events = synthetic.generate(TRAFFIC, seed=21, scenario=DRIFT, n_entities=100)
    routes = [router.decide(str(e)) for e in events.entity]
    scores = np.empty(TRAFFIC)
    for version_id in {entry["id"] for entry, _ in routes}:
        rows = [i for i, (entry, _) in enumerate(routes) if entry["id"] == version_id]
        booster = services.version_load_booster(version=MLModelVersion.objects.get(pk=version_id))
        scores[rows] = booster.predict(
            xgb.DMatrix(events.X[rows], feature_names=events.feature_names)
        )
    # Event times: this drift window, after the experiment started, up to now.
    now = timezone.now()
    start = window_floor(now, j.champion.model.drift_window_minutes)
    started = Experiment.objects.get(challenger=j.candidate).started_at
    assert started is not None
    first = max(start, started) + timedelta(milliseconds=1)
    j.window = (start, start + timedelta(minutes=j.champion.model.drift_window_minutes))
    stamps = [first + (now - first) * (i / TRAFFIC) for i in range(TRAFFIC)]
    items = [
        record | {"model": MODEL, "score": float(scores[i]), "timestamp": stamps[i].isoformat()}
        for i, record in enumerate(events.to_records())
    ]
    for record, (entry, arm) in zip(items, routes, strict=True):
        j.served[record["request_id"]] = (entry["id"], arm)
    response = api.post("/api/v1/predictions/", data={"predictions": items})
    assert response.status == 201, response.text()
    assert response.json() == {"received": TRAFFIC, "accepted": TRAFFIC, "duplicates": 0}
    # A retried batch stores nothing twice.
    response = api.post("/api/v1/predictions/", data={"predictions": items})
    assert response.json() == {"received": TRAFFIC, "accepted": 0, "duplicates": TRAFFIC}
    stored = {
        rid: (vid, role)
        for rid, vid, role in PredictionLog.objects.values_list("request_id", "version_id", "role")
    }
    assert stored == j.served  # the server routed every entity as the published config did
    assert {arm for _, arm in routes} == {"champion", "challenger"}
    j.events = events


def _post_verdicts(j: Journey, api) -> None:
    flagged = list(
        PredictionLog.objects.filter(decision=True).values_list("incident_id", flat=True)
    )
    truth = dict(zip(j.events.incident_id.tolist(), j.events.y.tolist(), strict=True))
    verdicts = [
        {"incident_id": inc, "label": "threat" if truth[inc] else "benign"} for inc in flagged
    ]
    response = api.post("/api/v1/feedback/", data={"verdicts": verdicts})
    assert response.status == 200, response.text()
    assert (response.json()["recorded"], response.json()["unknown"]) == (len(flagged), 0)
    labelled = dict(
        PredictionLog.objects.filter(label__isnull=False).values_list("incident_id", "label")
    )
    assert labelled == {inc: truth[inc] for inc in flagged}


def _run_drift(j: Journey) -> None:
    start, end = j.window
    run = drift_run_create(model=j.champion.model, start=start, end=end, trigger="api")
    deadline = time.monotonic() + 90
    while run.status not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    assert run.status == DriftRun.Status.SUCCEEDED, (run.status, run.message)
    assert run.rows_read == TRAFFIC
    result = DriftResult.objects.get(version=j.champion, window_start=start)
    assert result.status == "ok" and "bytes_out" in result.drifted_features
    alert = Alert.objects.get(dedupe_key=f"drift:{j.champion.pk}:bytes_out")
    assert (alert.status, alert.kind) == ("open", "drift")
    j.alert = alert


# --- 4. Analyst: explanations and the drift dashboard ----------------------------------


def step_4_an_analyst_reads_a_waterfall_and_the_drift_alert(j: Journey) -> None:
    page = j.open_as(j.analyst)
    page.click("nav[aria-label=Main] a[href='/explain/']")
    page.wait_for_selector("[data-testid=filters]")
    page.select_option("select[name=model]", MODEL)
    page.fill("input[name=score_min]", str(HIGH_RISK))
    page.click("[data-testid=filters] button[type=submit]")
    page.wait_for_url(re.compile(r"score_min="))
    page.wait_for_selector("[data-testid=incidents] tbody tr")
    high = PredictionLog.objects.filter(score__gte=HIGH_RISK, role__in=["champion", "challenger"])
    assert high.count() >= 1
    assert f"({high.count()} predictions)" in page.text_content("main")
    scores = page.locator("[data-testid=incidents] tbody td.num").all_text_contents()
    assert len(scores) == min(high.count(), 50)  # one page of the list
    assert all(float(s) >= HIGH_RISK for s in scores)

    link = page.locator("[data-testid=incidents] tbody tr a").first
    incident = link.text_content().strip()
    link.click()
    page.wait_for_selector("[data-testid=waterfall] .waterfalllayer .point path")
    prediction = high.get(incident_id=incident)
    _check_waterfall(page, prediction)
    shoot(page, "04a-analyst-reads-waterfall")

    page.click("nav[aria-label=Main] a[href='/monitoring/']")
    page.wait_for_selector("h1:has-text('Monitoring')")
    assert j.alert.title in page.text_content("main")
    page.click(f"a[href='/monitoring/{MODEL}/']")
    page.wait_for_selector(f"[data-testid=alerts] tr[data-alert='{j.alert.pk}']")
    page.wait_for_selector("#chart-histogram.js-plotly-plot .main-svg")
    row = page.text_content(f"tr[data-alert='{j.alert.pk}']")
    assert "bytes_out drifted" in row and "open" in row
    run_row = page.locator("[data-testid=runs] tbody tr").first.text_content()
    assert "succeeded" in run_row and str(TRAFFIC) in run_row
    shoot(page, "04b-analyst-sees-drift-alert")


def _check_waterfall(page, prediction: PredictionLog) -> None:
    """Bars and labels against xgboost's own TreeSHAP of the version that scored it."""
    version = prediction.version
    names = version.feature_names
    booster = services.version_load_booster(version=version)
    row = xgb.DMatrix(prediction.feature_vector().reshape(1, -1), feature_names=names)
    contributions = booster.predict(row, pred_contribs=True)[0]
    margin = float(booster.predict(row, output_margin=True)[0])
    shown = min(len(names), 8)
    bars = page.locator("[data-testid=waterfall] .waterfalllayer .point")
    assert bars.count() == 1 + shown + (len(names) > shown) + 1  # base, features, rest, total
    labels = page.locator("[data-testid=waterfall] .ytick text").all_text_contents()
    order = np.argsort(-np.abs(contributions[:-1]), kind="stable")
    magnitude = np.abs(contributions[:-1])[order]
    # Features clearly inside the top `shown` (ties at the cut could go either way).
    clear = [
        names[k] for n, k in enumerate(order[:shown]) if magnitude[n] > magnitude[shown] + 1e-6
    ]
    assert clear and set(clear) <= set(labels), (clear, labels)
    assert f"{len(names) - shown} other features" in labels
    shown_margin = float(page.text_content("[data-testid=margin]").split()[0])
    assert shown_margin == pytest.approx(margin, abs=1e-3)
    assert page.locator("[data-testid=feature-table] tbody tr").count() == len(names)
    table = page.text_content("[data-testid=feature-table]")
    assert all(name in table for name in names)
    assert f"{version.model.name} {version.version}" in page.text_content(
        "[data-testid=model-version]"
    )


# --- 5. Auditor: compliance report and audit-trail export ------------------------------


def step_5_an_auditor_reads_the_report_and_exports_the_trail(j: Journey) -> None:
    from fairness.services import fairness_audit_create, fairness_audit_execute_now

    created = fairness_audit_create(version=j.candidate, requested_by=j.approver, enqueue=False)
    audit = fairness_audit_execute_now(audit_id=created.pk)
    assert audit is not None and audit.status == "complete" and audit.verdict

    page = j.open_as(j.auditor)
    page.click("nav[aria-label=Main] a[href='/fairness/']")
    page.wait_for_selector(f"[data-testid=model-{MODEL}]")
    page.click(f"a[href='/fairness/versions/{j.candidate.pk}/report/']")
    page.wait_for_selector("[data-testid=compliance-report]")
    assert page.text_content("h1").strip() == f"Compliance report: {MODEL} {CANDIDATE}"
    verdict = page.text_content("[data-testid=verdict] h2")
    assert audit.verdict in verdict
    assert page.locator("[data-testid=groups] tbody tr").count() == len(audit.groups)
    approval = page.text_content("[data-testid=approval-request]")
    assert f"approve by {j.approver.username}" in approval and APPROVAL_NOTES in approval
    shoot(page, "05a-auditor-reads-fairness-report")

    page.click("nav[aria-label=Main] a[href='/registry/audit/']")
    page.wait_for_selector("h1:has-text('Audit trail')")
    assert "verified" in page.text_content("main p")
    with page.expect_download() as download:
        page.click("[data-testid=export-csv]")
    with open(download.value.path(), newline="") as handle:
        rows = list(csv.DictReader(handle))
    events = {(r["action"], r["actor_label"]) for r in rows if r["model_name"] == MODEL}
    assert {
        ("version.registered", j.engineer.username),
        ("approval.requested", j.engineer.username),
        ("approval.approve", j.approver.username),
        ("version.transition", j.approver.username),
        ("traffic.changed", j.approver.username),
    } <= events, events
    approvals = [json.loads(r["payload"]) for r in rows if r["action"] == "approval.approve"]
    assert {"version": CANDIDATE, "notes": APPROVAL_NOTES} in approvals
    assert AuditEvent.objects.filter(action="audit.exported", actor=j.auditor).exists()
    shoot(page, "05b-auditor-exports-audit-trail")
