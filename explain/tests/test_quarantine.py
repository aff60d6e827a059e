"""A precompute whose version killed the worker past TASK_CRASH_LIMIT: that version's
precompute is quarantined with a critical alert, the other versions are explained."""

import pytest
from django.utils import timezone

from core.models import TaskDelivery
from explain.guarded import explanations_precompute_guarded
from explain.models import Explanation
from explain.services import high_risk_predictions
from explain.tasks import explain_predictions
from monitoring.models import Alert

pytestmark = pytest.mark.django_db
TASK = "explain.tasks.explain_predictions"


@pytest.fixture
def versions(register, register_other, trained, log_predictions):
    crashing, healthy = register("1.0.0"), register_other("1.1.0")
    crashing.model.explain_threshold = 0.0
    crashing.model.save(update_fields=["explain_threshold"])
    for version in (crashing, healthy):
        log_predictions(version, trained.X_valid[:20], ids=[f"{version.pk}-{i}" for i in range(20)])
    return crashing, healthy


def deaths(key, n):
    now = timezone.now()
    TaskDelivery.objects.create(
        key=key, task=TASK, label="x", attempts=n, first_seen=now, last_seen=now
    )


def test_a_precompute_that_ends_leaves_no_count(versions):
    report = explain_predictions(list(high_risk_predictions().values_list("pk", flat=True)))
    assert report["explained"] == Explanation.objects.count() > 0
    assert report["skipped"] == []
    assert not TaskDelivery.objects.exists()


def test_a_version_past_the_limit_is_quarantined_and_the_others_go_on(versions, settings):
    settings.TASK_CRASH_LIMIT = 3
    crashing, healthy = versions
    deaths(f"explain.precompute:m-1:{crashing.pk}", 3)
    report = explanations_precompute_guarded(
        predictions=high_risk_predictions(), batch_size=500, task=TASK, message="m-1"
    )
    assert not Explanation.objects.filter(version=crashing).exists()
    assert Explanation.objects.filter(version=healthy).count() == report.explained > 0
    assert report.skipped == [
        {"version": crashing.pk, "predictions": 20, "reason": "precompute quarantined"}
    ]
    # The count moved to the version: later messages skip it without counting.
    row = TaskDelivery.objects.get()
    assert row.key == f"explain.precompute:version:{crashing.pk}" and row.quarantined_at
    assert row.reason == "the worker died 3 times running it (limit 3)"
    alert = Alert.objects.get(kind="quarantine", severity="critical")
    assert alert.version == crashing
    assert alert.title.startswith(f"Quarantined {TASK} on precompute of {crashing}:")

    report = explain_predictions(list(high_risk_predictions().values_list("pk", flat=True)))
    assert report["skipped"] == [
        {"version": crashing.pk, "predictions": 20, "reason": "precompute quarantined"}
    ]
    assert not Explanation.objects.filter(version=crashing).exists()
    assert TaskDelivery.objects.count() == 1 and Alert.objects.get().count == 1
