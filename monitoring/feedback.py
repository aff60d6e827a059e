"""Analyst verdicts on logged predictions, with their full history."""

from django.db import transaction
from django.utils import timezone

from monitoring.models import FeedbackEvent, PredictionLog

# True/False hash like 1/0, so JSON booleans are accepted too.
LABELS = {
    1: 1,
    0: 0,
    "1": 1,
    "0": 0,
    "threat": 1,
    "true_positive": 1,
    "malicious": 1,
    "benign": 0,
    "false_positive": 0,
}


def parse_label(value) -> int | None:
    """1 (a real threat) or 0 (benign) from the accepted spellings; None if unrecognised."""
    try:
        return LABELS.get(value.lower() if isinstance(value, str) else value)
    except TypeError:
        return None


@transaction.atomic
def feedback_record(
    *, prediction: PredictionLog, label: int, user, note: str = ""
) -> FeedbackEvent:
    """Set the prediction's current label and append the verdict to its history."""
    return feedback_record_many(predictions=[prediction], label=label, user=user, note=note)[0]


@transaction.atomic
def feedback_record_many(*, predictions, label: int, user, note: str = "") -> list[FeedbackEvent]:
    if label not in (0, 1):
        raise ValueError("label must be 0 (benign) or 1 (threat)")
    now = timezone.now()
    rows = list(
        PredictionLog.objects.select_for_update().filter(pk__in=[p.pk for p in predictions])
    )
    events = [
        FeedbackEvent(prediction=row, label=label, previous_label=row.label, user=user, note=note)
        for row in rows
    ]
    FeedbackEvent.objects.bulk_create(events)
    PredictionLog.objects.filter(pk__in=[r.pk for r in rows]).update(
        label=label, labelled_at=now, labelled_by=user
    )
    for prediction in predictions:
        prediction.label, prediction.labelled_at, prediction.labelled_by = label, now, user
    return events
