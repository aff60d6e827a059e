"""Analyst verdicts on logged predictions, with their full history."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit import Entry, audit_record_many
from monitoring.models import FeedbackEvent, PredictionLog
from registry.models import MLModelVersion

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


@dataclass(frozen=True)
class Verdict:
    """One verdict of a batch: the predictions whose ``key`` (request_id or incident_id)
    equals ``value`` are labelled ``label`` (1 threat, 0 benign)."""

    key: str
    value: str
    label: int
    note: str = ""


VERDICT_KEYS = ("request_id", "incident_id")
UPDATE_BATCH = 900  # primary keys per UPDATE: under SQLite's oldest limit of 999 parameters


@transaction.atomic
def feedback_record_batch(*, verdicts: Sequence[Verdict], user) -> list[int]:
    """Apply the verdicts in their order (a later verdict on the same prediction records
    the earlier one as its previous label) and return how many predictions each one
    labelled, 0 for an id no prediction has.

    The ids of the whole batch are resolved with one query; the history is written with
    one bulk insert and the labels with one update per label (each split in chunks only
    past the database's limit on parameters), so the queries do not grow with the batch.
    """
    for verdict in verdicts:
        if verdict.key not in VERDICT_KEYS:
            raise ValueError(f"a verdict names its predictions by one of {VERDICT_KEYS}")
        _check_label(verdict.label)
    wanted = {key: {v.value for v in verdicts if v.key == key and v.value} for key in VERDICT_KEYS}
    found: dict[str, defaultdict[str, list[PredictionLog]]] = {
        key: defaultdict(list) for key in VERDICT_KEYS
    }
    if any(wanted.values()):
        rows = (
            PredictionLog.objects.select_for_update()
            .filter(
                Q(request_id__in=wanted["request_id"]) | Q(incident_id__in=wanted["incident_id"])
            )
            .only("pk", "request_id", "incident_id", "label", "version_id")
            .order_by("pk")
        )
        for row in rows:
            for key in VERDICT_KEYS:
                found[key][getattr(row, key)].append(row)
    matched = [found[v.key].get(v.value, []) if v.value else [] for v in verdicts]
    _verdicts_write(
        [(rows, v.label, v.note) for rows, v in zip(matched, verdicts, strict=True)],
        user=user,
        now=timezone.now(),
    )
    return [len(rows) for rows in matched]


@transaction.atomic
def feedback_record_many(*, predictions, label: int, user, note: str = "") -> list[FeedbackEvent]:
    """Label the given predictions and append the verdict to each one's history."""
    _check_label(label)
    now = timezone.now()
    rows = list(
        PredictionLog.objects.select_for_update().filter(pk__in=[p.pk for p in predictions])
    )
    events = _verdicts_write([(rows, label, note)], user=user, now=now)
    for prediction in predictions:
        prediction.label, prediction.labelled_at, prediction.labelled_by = label, now, user
    return events


def _check_label(label) -> None:
    if label not in (0, 1):
        raise ValueError("label must be 0 (benign) or 1 (threat)")


def _verdicts_write(applied, *, user, now) -> list[FeedbackEvent]:
    """Write verdicts given as (locked rows, label, note) in order: one history event
    per row and verdict, then each row's last label (in bulk)."""
    last: dict[int, int] = {}
    events = []
    for rows, label, note in applied:
        for row in rows:
            previous = last.get(row.pk, row.label)
            events.append(
                FeedbackEvent(
                    prediction=row, label=label, previous_label=previous, user=user, note=note
                )
            )
            last[row.pk] = label
    FeedbackEvent.objects.bulk_create(events)
    for label in (0, 1):
        pks = [pk for pk, final in last.items() if final == label]
        for start in range(0, len(pks), UPDATE_BATCH):
            PredictionLog.objects.filter(pk__in=pks[start : start + UPDATE_BATCH]).update(
                label=label, labelled_at=now, labelled_by=user
            )
    # Last: the chain head's lock is then held only for the append itself.
    _verdicts_audit(events, user=user)
    return events


def _verdicts_audit(events: list[FeedbackEvent], *, user) -> None:
    """Every verdict is evidence (performance monitoring and fairness audits read the
    labels): one audit event per prediction labelled, naming the old and new label and
    the note, appended in bulk."""
    names = dict(
        MLModelVersion.objects.filter(pk__in={e.prediction.version_id for e in events}).values_list(
            "pk", "model__name"
        )
    )
    word = {None: None, 0: "benign", 1: "threat"}
    audit_record_many(
        actor=user,
        entries=[
            Entry(
                action=_verdict_action(e.previous_label, e.label),
                object_type="PredictionLog",
                object_id=str(e.prediction.pk),
                model_name=names.get(e.prediction.version_id, ""),
                payload={
                    "request_id": e.prediction.request_id,
                    "incident_id": e.prediction.incident_id,
                    "old": word[e.previous_label],
                    "new": word[e.label],
                    "note": e.note,
                },
            )
            for e in events
        ],
    )


def _verdict_action(previous: int | None, label: int) -> str:
    if previous is None:
        return "verdict.recorded"
    return "verdict.confirmed" if previous == label else "verdict.changed"
