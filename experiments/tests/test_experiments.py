"""Experiment results from the log, shadow comparisons, the guardrail, pages and admin."""

import pytest

from core.models import AuditEvent
from experiments.services import experiment_guardrail, experiment_results, shadow_results
from registry.models import Experiment, TrafficSplit
from registry.tests.ab_support import live_fixture, log, log_arm  # noqa: F401
from registry.traffic import ExperimentPlan, experiment_plan, traffic_set

pytestmark = pytest.mark.django_db


def start(live, approver, bp=2000, **plan):
    champion, challenger = live
    traffic_set(
        model=champion.model,
        challenger=challenger,
        challenger_bp=bp,
        shadows=[],
        actor=approver,
        plan=ExperimentPlan(**plan),
    )
    return Experiment.objects.get(status="running")


def test_results_count_each_arm_from_the_log(live, approver):
    champion, challenger = live
    experiment = start(live, approver)
    log_arm(champion, "champion", tp=80, fp=20)
    log(champion, "champion", decision=False, label=0, n=50)
    log(champion, "champion", decision=True, label=None, n=7)
    log_arm(challenger, "challenger", tp=45, fp=5)
    log(challenger, "shadow", decision=True, label=0, n=30)  # other roles do not count
    results = experiment_results(experiment=experiment)
    arm, other = results.arms
    assert (arm.predictions, arm.flagged, arm.labelled) == (157, 107, 150)
    assert (arm.metric.successes, arm.metric.trials) == (80, 100)
    assert (other.metric.successes, other.metric.trials) == (45, 50)
    assert results.comparison.difference == pytest.approx(0.1)
    assert results.verdict in ("no significant difference yet", "collecting data")


def test_recall_and_accuracy_use_their_own_denominators(live, approver):
    champion, challenger = live
    experiment = start(live, approver, primary_metric="recall")
    log(champion, "champion", decision=True, label=1, n=30)
    log(champion, "champion", decision=False, label=1, n=10)
    log(champion, "champion", decision=True, label=0, n=5)
    arm = experiment_results(experiment=experiment).arms[0]
    assert (arm.metric.successes, arm.metric.trials) == (30, 40)
    experiment.primary_metric = "accuracy"
    arm = experiment_results(experiment=experiment).arms[0]
    assert (arm.metric.successes, arm.metric.trials) == (30, 45)


def test_a_significantly_worse_challenger_is_rolled_back_with_reasons(live, approver):
    champion, challenger = live
    experiment = start(live, approver)
    log_arm(champion, "champion", tp=450, fp=50)
    log_arm(challenger, "challenger", tp=300, fp=200)
    reasons = experiment_guardrail(experiment_id=experiment.pk)
    assert reasons and "significantly worse" in reasons[0]
    experiment.refresh_from_db()
    assert experiment.status == "rolled_back" and "guardrail" in experiment.end_reason
    assert experiment.min_p_value < 0.05
    split = TrafficSplit.objects.get()
    assert split.challenger is None and split.champion_bp == 10_000
    challenger.refresh_from_db()
    assert challenger.traffic_percentage == 0
    assert AuditEvent.objects.filter(action="traffic.auto_rollback").count() == 1
    from monitoring.models import Alert

    alert = Alert.objects.get(kind="experiment")
    assert alert.severity == "critical" and alert.version == challenger
    # idempotent: a second run (a redelivered task) changes nothing
    assert experiment_guardrail(experiment_id=experiment.pk) == []
    assert AuditEvent.objects.filter(action="traffic.auto_rollback").count() == 1


def test_an_open_critical_drift_alert_rolls_the_challenger_back(live, approver):
    from monitoring.alerts import alert_raise

    champion, challenger = live
    experiment = start(live, approver)
    alert_raise(
        model=champion.model,
        version=challenger,
        kind="drift",
        severity="critical",
        dedupe_key=f"drift:{challenger.pk}:score",
        title="score drift on 1.1.0",
    )
    reasons = experiment_guardrail(experiment_id=experiment.pk)
    assert reasons == ["open critical drift alert: score drift on 1.1.0"]
    assert TrafficSplit.objects.get().challenger is None


def test_a_healthy_or_better_challenger_keeps_its_traffic(live, approver):
    champion, challenger = live
    experiment = start(live, approver)
    log_arm(champion, "champion", tp=300, fp=200)
    log_arm(challenger, "challenger", tp=450, fp=50)
    assert experiment_guardrail(experiment_id=experiment.pk) == []
    experiment.refresh_from_db()
    assert experiment.status == "running" and experiment.last_checked_at is not None
    verdict = experiment_results(experiment=experiment).verdict
    assert verdict.startswith("challenger significantly better")
    assert TrafficSplit.objects.get().challenger_bp == 2000


def test_re_enabling_after_a_rollback_starts_a_new_experiment(live, approver):
    champion, challenger = live
    experiment = start(live, approver)
    log_arm(champion, "champion", tp=450, fp=50)
    log_arm(challenger, "challenger", tp=300, fp=200)
    experiment_guardrail(experiment_id=experiment.pk)
    again = start(live, approver, bp=500)
    assert again.pk != experiment.pk and again.status == "running"


def test_shadows_are_compared_with_the_champion_on_the_same_incidents(live, staged, approver):
    champion, challenger = live
    shadow = staged("1.2.0")
    traffic_set(
        model=champion.model, challenger=None, challenger_bp=0, shadows=[shadow], actor=approver
    )
    # 40 incidents: both flag 30 (20 labelled threats, 10 benign), the shadow alone flags 10 benign
    for i in range(40):
        both = i < 30
        label = 1 if i < 20 else 0
        log(champion, "champion", decision=both, label=label, incident=f"I{i}")
        log(shadow, "shadow", decision=True, label=None, incident=f"I{i}")
    log(shadow, "shadow", decision=True, label=None, incident="unpaired")
    (result,) = shadow_results(model=champion.model)
    assert result.pairs == 40 and result.labelled == 40
    assert (result.agreement.successes, result.agreement.trials) == (30, 40)
    assert (result.shadow_metric.successes, result.shadow_metric.trials) == (20, 40)
    assert (result.champion_metric.successes, result.champion_metric.trials) == (20, 30)


def test_a_planned_experiment_starts_when_the_challenger_gets_traffic(live, approver):
    champion, challenger = live
    planned = experiment_plan(
        model=champion.model,
        challenger=challenger,
        plan=ExperimentPlan(hypothesis="as precise", minimum_sample_size=500),
        actor=approver,
    )
    assert planned.status == "planned" and planned.started_at is None
    running = start(live, approver)
    assert running.pk == planned.pk and running.minimum_sample_size == 500
    assert [e.action for e in running.events.all()] == ["planned", "started"]


# --- pages ------------------------------------------------------------------------


def test_the_experiment_page_shows_split_results_and_history(live, approver, analyst, client):
    champion, challenger = live
    start(live, approver, hypothesis="no precision loss")
    log_arm(champion, "champion", tp=40, fp=10)
    log_arm(challenger, "challenger", tp=20, fp=5)
    client.force_login(analyst)
    response = client.get("/registry/models/threat/experiment/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("no precision loss", "80.00", "20.00", "0.800", "started", "Always-valid"):
        assert text in html
    assert "Edit the split" not in html  # analysts read, approvers edit
    client.force_login(approver)
    assert "Edit the split" in client.get("/registry/models/threat/experiment/").content.decode()
    assert "/registry/models/threat/experiment/" in client.get("/registry/").content.decode()


def test_the_experiment_page_checks_roles(live, client, make_user):
    response = client.get("/registry/models/threat/experiment/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(make_user(None, "nobody"))
    assert client.get("/registry/models/threat/experiment/").status_code == 403
    client.force_login(make_user("Analyst", "other_analyst"))
    assert client.get("/registry/models/missing/experiment/").status_code == 404


def test_the_admin_previews_then_applies_a_split(live, approver, client):
    champion, challenger = live
    for i in range(300):
        log(champion, "champion", decision=False, label=None, entity=f"user-{i}")
    client.force_login(approver)
    url = "/admin/registry/trafficsplit/edit/threat/"
    form = {
        "challenger": challenger.pk,
        "challenger_percentage": "25",
        "primary_metric": "precision",
        "minimum_sample_size": "400",
        "revision": "0",
        "preview": "1",
    }
    preview = client.post(url, form)
    assert preview.status_code == 200
    assert "of the <strong>300</strong> entities" in preview.content.decode().lower()
    assert not TrafficSplit.objects.exists()
    applied = client.post(url, {**form, "confirm": "1"})
    assert applied.status_code == 302
    split = TrafficSplit.objects.get()
    assert (split.challenger, split.challenger_bp) == (challenger, 2500)
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.filter(object_id=str(split.pk)).exists()


def test_the_admin_split_pages_are_for_approvers_only(live, make_user, client):
    staff = make_user("Analyst", "staff_analyst")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    client.force_login(staff)
    assert client.get("/admin/registry/trafficsplit/edit/threat/").status_code == 403
    assert client.get("/admin/registry/trafficsplit/").status_code == 403


def test_the_admin_refuses_a_share_without_a_challenger(live, approver, client):
    client.force_login(approver)
    response = client.post(
        "/admin/registry/trafficsplit/edit/threat/",
        {
            "challenger": "",
            "challenger_percentage": "10",
            "primary_metric": "precision",
            "minimum_sample_size": "400",
            "revision": "0",
            "confirm": "1",
        },
    )
    assert response.status_code == 200
    assert "needs a challenger" in response.content.decode()
    assert not TrafficSplit.objects.exists()
