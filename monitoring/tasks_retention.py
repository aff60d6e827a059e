from celery import shared_task

from core.queue import RETRY_DEFAULTS
from monitoring.retention import predictions_purge_batch


@shared_task(**RETRY_DEFAULTS)
def prediction_retention_purge(max_batches: int = 200) -> int:
    """Run from beat daily; each call deletes at most max_batches bounded batches."""
    total = 0
    for _ in range(max_batches):
        deleted = predictions_purge_batch()
        total += deleted
        if not deleted:
            break
    return total
