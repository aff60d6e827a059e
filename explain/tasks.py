from celery import shared_task
from django.conf import settings

from core.queue import RETRY_DEFAULTS
from explain.services import (
    explanations_precompute,
    explanations_precompute_recent,
    high_risk_predictions,
)


@shared_task(**RETRY_DEFAULTS)
def explain_recent(minutes: int | None = None) -> dict:
    """Periodic: explain new high-risk predictions (idempotent; cached rows are skipped)."""
    return explanations_precompute_recent(
        minutes=minutes or settings.EXPLAIN_LOOKBACK_MINUTES,
        batch_size=settings.EXPLAIN_BATCH_SIZE,
    ).as_dict()


@shared_task(**RETRY_DEFAULTS)
def explain_predictions(prediction_ids: list[int]) -> dict:
    """Explain the high-risk ones among just-logged predictions (enqueue on commit)."""
    return explanations_precompute(
        predictions=high_risk_predictions().filter(pk__in=prediction_ids),
        batch_size=settings.EXPLAIN_BATCH_SIZE,
    ).as_dict()
