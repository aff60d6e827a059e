from celery import shared_task
from django.conf import settings

from core.queue import RETRY_DEFAULTS
from explain.guarded import (
    explanations_precompute_guarded,
    explanations_precompute_recent_guarded,
)
from explain.services import high_risk_predictions

# Both load boosters: their work runs under the crash guard (explain.guarded), keyed by
# the message's id, which a redelivery after a worker death keeps.


@shared_task(bind=True, **RETRY_DEFAULTS)
def explain_recent(self, minutes: int | None = None) -> dict:
    """Periodic: explain new high-risk predictions (idempotent; cached rows are skipped)."""
    return explanations_precompute_recent_guarded(
        minutes=minutes or settings.EXPLAIN_LOOKBACK_MINUTES,
        batch_size=settings.EXPLAIN_BATCH_SIZE,
        task=self.name,
        message=self.request.id,
    ).as_dict()


@shared_task(bind=True, **RETRY_DEFAULTS)
def explain_predictions(self, prediction_ids: list[int]) -> dict:
    """Explain the high-risk ones among just-logged predictions (enqueue on commit)."""
    return explanations_precompute_guarded(
        predictions=high_risk_predictions().filter(pk__in=prediction_ids),
        batch_size=settings.EXPLAIN_BATCH_SIZE,
        task=self.name,
        message=self.request.id,
    ).as_dict()
