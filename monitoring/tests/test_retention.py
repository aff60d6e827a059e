from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring.models import FeedbackEvent, PredictionLog
from monitoring.retention import predictions_purge_batch
from monitoring.tasks_retention import prediction_retention_purge
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(register, analyst):
    version = register()
    now = timezone.now()

    def make(days_old, n, prefix):
        factories.predictions_log(
            version,
            [{"request_id": f"{prefix}-{i}"} for i in range(n)],
            entity="h",
            decision=False,
            created_at=now - timedelta(days=days_old),
        )

    make(200, 25, "old")
    make(182, 5, "recent")
    factories.verdict(PredictionLog.objects.get(request_id="old-0"), label=1, user=analyst)
    return version


def test_retention_deletes_only_rows_older_than_the_period_in_bounded_batches(logged, settings):
    settings.PREDICTION_RETENTION_DAYS = 183
    assert predictions_purge_batch(batch_size=10) == 10
    assert PredictionLog.objects.filter(request_id__startswith="old").count() == 15
    settings.RETENTION_BATCH_SIZE = 10
    assert prediction_retention_purge.run() == 15
    assert not PredictionLog.objects.filter(request_id__startswith="old").exists()
    assert PredictionLog.objects.filter(request_id__startswith="recent").count() == 5
    assert FeedbackEvent.objects.count() == 0


def test_the_purge_is_scheduled_daily():
    task = PeriodicTask.objects.get(task="monitoring.tasks_retention.prediction_retention_purge")
    assert task.enabled and task.crontab.hour == "3"
