import io
import time

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from explain import shap_core
from explain.models import Explanation
from explain.services import explanations_precompute, feature_hash, high_risk_predictions
from explain.tests.conftest import booster_of


@pytest.fixture
def version(register):
    version = register()
    version.model.explain_threshold = 0.5
    version.model.save(update_fields=["explain_threshold"])
    return version


@pytest.fixture
def traffic(version, trained, log_predictions):
    X = trained.X_valid[:400]
    return log_predictions(version, X, ids=[f"T-{i}" for i in range(len(X))])


def high_risk(rows, version):
    return [r for r in rows if r.score >= version.model.explain_threshold]


def assert_every_explanation_adds_up():
    for explanation in Explanation.objects.select_related("version"):
        values = explanation.contribution_vector()
        assert abs(explanation.base_value + values.sum() - explanation.margin) <= 1e-4
        booster = booster_of(explanation.version)
        import xgboost as xgb

        margin = booster.predict(
            xgb.DMatrix(
                explanation.feature_vector().reshape(1, -1),
                feature_names=explanation.version.feature_names,
            ),
            output_margin=True,
        )[0]
        assert explanation.margin == pytest.approx(float(margin), abs=1e-6)


@pytest.fixture
def shap_calls(monkeypatch):
    """Counts calls of the real Explainer.explain (it still runs)."""
    calls = []
    real = shap_core.Explainer.explain

    def counting(self, X):
        calls.append(len(np.atleast_2d(X)))
        return real(self, X)

    monkeypatch.setattr(shap_core.Explainer, "explain", counting)
    return calls


@pytest.mark.django_db
def test_precompute_explains_high_risk_rows_in_one_shap_call_per_batch(
    version, traffic, shap_calls
):
    expected = high_risk(traffic, version)
    assert 0 < len(expected) < len(traffic)
    report = explanations_precompute(predictions=high_risk_predictions(), batch_size=50)
    assert report.scanned == len(expected)
    distinct = {feature_hash(bytes(r.features)) for r in expected}
    assert report.explained == Explanation.objects.count() == len(distinct)
    assert len(shap_calls) == report.batches == -(-len(expected) // 50)
    assert sum(shap_calls) == len(distinct)
    assert_every_explanation_adds_up()


@pytest.mark.django_db
def test_precompute_is_idempotent(version, traffic, shap_calls):
    explanations_precompute(predictions=high_risk_predictions(), batch_size=64)
    calls = len(shap_calls)
    again = explanations_precompute(predictions=high_risk_predictions(), batch_size=64)
    assert again.explained == 0 and again.batches == 0
    assert len(shap_calls) == calls


@pytest.mark.django_db
def test_precomputed_values_equal_the_on_demand_ones(version, traffic, api_as, soc_service):
    explanations_precompute(predictions=high_risk_predictions())
    row = high_risk(traffic, version)[0]
    stored = Explanation.objects.get(
        version=version, feature_hash=feature_hash(bytes(row.features))
    )
    body = api_as(soc_service).get(f"/api/ml/explain/{row.incident_id}").json()
    assert body["cached"] is True
    got = np.array([body["explanation"]["all_features"][n] for n in version.feature_names])
    assert np.array_equal(got, stored.contribution_vector())


@pytest.mark.django_db
def test_the_backlog_command_reports_and_skips_what_is_cached(version, traffic):
    out = io.StringIO()
    call_command(
        "explain_backlog", "--model", "threat", "--batch-size", "100", stdout=out, verbosity=0
    )
    n = len(high_risk(traffic, version))
    assert f"scanned {n} predictions" in out.getvalue()
    out = io.StringIO()
    call_command("explain_backlog", stdout=out, verbosity=0)
    assert "computed 0 new explanations" in out.getvalue()
    out = io.StringIO()
    call_command("explain_backlog", "--all", stdout=out, verbosity=0)
    assert f"scanned {len(traffic)} predictions" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "no model named"),
        (["--model-version", "1.0.0"], "--model-version needs --model"),
        (["--model", "threat", "--model-version", "9.9.9"], "has no version"),
        (["--since", "yesterday"], "ISO datetime"),
        (["--batch-size", "0"], "at least 1"),
    ],
)
def test_the_backlog_command_refuses_bad_arguments(version, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("explain_backlog", *args, verbosity=0)


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_precomputes_recent_and_just_logged_predictions(
    celery_worker, version, trained, log_predictions
):
    from explain.tasks import explain_predictions, explain_recent

    rows = log_predictions(version, trained.X_valid[:200], ids=[f"W-{i}" for i in range(200)])
    first = rows[:100]
    explain_predictions.delay([r.pk for r in first])
    expected_first = {feature_hash(bytes(r.features)) for r in high_risk(first, version)}
    assert wait_for(
        lambda: set(Explanation.objects.values_list("feature_hash", flat=True)) >= expected_first
    )
    explain_recent.delay()
    expected_all = {feature_hash(bytes(r.features)) for r in high_risk(rows, version)}
    assert wait_for(lambda: Explanation.objects.count() == len(expected_all))
    assert set(Explanation.objects.values_list("feature_hash", flat=True)) == expected_all
    assert_every_explanation_adds_up()
    connection.close()


@pytest.mark.django_db
def test_the_demo_explains_high_risk_incidents_once(version, traffic):
    from explain import demo

    out = io.StringIO()
    demo.build(stdout=out)
    n = len(high_risk(traffic, version))
    distinct = len({feature_hash(bytes(r.features)) for r in high_risk(traffic, version)})
    assert f"{n} high-risk incidents, {distinct} explanations computed now" in out.getvalue()
    out = io.StringIO()
    demo.build(stdout=out)
    assert "0 explanations computed now" in out.getvalue()


@pytest.mark.django_db
def test_the_precompute_is_scheduled_every_five_minutes():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="explain.tasks.explain_recent")
    assert task.enabled and (task.interval.every, task.interval.period) == (5, "minutes")
