"""Prediction-log retention: delete rows older than PREDICTION_RETENTION_DAYS in batches.

Bounded batches keep each transaction (and its locks) short on a table that is
written continuously; the daily task deletes at most its ``max_batches`` batches and
leaves a larger backlog to the following days' runs.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.models import PredictionLog


def retention_cutoff():
    return timezone.now() - timedelta(days=settings.PREDICTION_RETENTION_DAYS)


def predictions_purge_batch(*, cutoff=None, batch_size: int | None = None) -> int:
    """Delete one batch of rows older than the cutoff; returns how many were deleted."""
    cutoff = cutoff or retention_cutoff()
    batch_size = batch_size or settings.RETENTION_BATCH_SIZE
    with transaction.atomic():
        ids = list(
            PredictionLog.objects.filter(created_at__lt=cutoff)
            .order_by("created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0
        # FeedbackEvent rows cascade; explanations are keyed by version, not by row.
        deleted, _ = PredictionLog.objects.filter(pk__in=ids).delete()
    return len(ids)
