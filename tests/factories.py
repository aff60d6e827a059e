"""Rows for tests, built in one place: model versions, logged predictions, verdicts, alerts.

Every app's tests import these (the repository root is on sys.path): a new column or
constraint of PredictionLog, FeedbackEvent or Alert is then handled here once. The
helpers of each app (monitoring's ``log_window``, the A/B ``log``, the explanation and
fairness loggers, the seeded world) only choose the values.
"""

import copy
import itertools

import numpy as np
import xgboost as xgb
from django.utils import timezone

from monitoring.feedback import feedback_record_many
from monitoring.models import Alert, FeedbackEvent, PredictionLog
from registry import services
from registry.models import MLModelVersion
from registry.registration import register_training_result

LIFECYCLE = ("training", "testing", "staging")

_serial = itertools.count()


def serial() -> int:
    """A number no other call returns in this process: for unique ids and keys."""
    return next(_serial)


# --- versions ------------------------------------------------------------------------


def version(
    result,
    *,
    user,
    model: str = "threat",
    semver: str = "1.0.0",
    gate: bool | None = None,
    to: str = "training",
) -> MLModelVersion:
    """Register a training result as ``semver`` of ``model`` (created if new) and move it
    through the lifecycle up to ``to`` (training, testing or staging), acting as ``user``.
    ``gate`` sets the model's fairness gate; None leaves it as it is."""
    obj = register_training_result(
        result=result, model_name=model, version=semver, registered_by=user
    )
    if gate is not None and obj.model.fairness_gate != gate:
        obj.model.fairness_gate = gate
        obj.model.save(update_fields=["fairness_gate"])
    for step in LIFECYCLE[1 : LIFECYCLE.index(to) + 1]:
        obj = services.version_transition(version=obj, to=step, actor=user)
    return obj


# --- predictions ---------------------------------------------------------------------


def scores(version: MLModelVersion, X) -> np.ndarray:
    """The version's scores (float64) of the feature rows ``X``, from its verified booster."""
    booster = services.version_load_booster(version=version)
    dmatrix = xgb.DMatrix(np.asarray(X, dtype=np.float64), feature_names=version.feature_names)
    return booster.predict(dmatrix).astype(np.float64)


def prediction(version: MLModelVersion, **fields) -> PredictionLog:
    """An unsaved prediction-log row of ``version``: the given fields over defaults (a
    unique request id, zero features in the version's schema, score 0.5, the decision
    the version's threshold gives that score, role champion, logged now). ``features``
    may be a vector of numbers (stored as little-endian float64)."""
    features = fields.pop("features", None)
    if features is None:
        features = np.zeros(len(version.feature_schema))
    if isinstance(features, bytes | bytearray | memoryview):
        features = bytes(features)
    else:
        features = np.ascontiguousarray(features, dtype="<f8").tobytes()
    score = float(fields.pop("score", 0.5))
    defaults = {
        "request_id": f"req-{serial()}",
        "decision": score >= version.decision_threshold,
        "created_at": timezone.now(),
    }
    return PredictionLog(version=version, features=features, score=score, **defaults | fields)


def predictions_log(
    version: MLModelVersion, rows, *, X=None, batch_size: int | None = None, **shared
) -> list[PredictionLog]:
    """Store prediction rows of ``version`` with one bulk insert (in ``batch_size``
    chunks). Each item of ``rows`` holds one row's own fields, ``shared`` the fields
    every row has, ``prediction`` gives the rest. With ``X`` (one feature row per item)
    each row gets its features and the version's score of them."""
    rows = [dict(row) for row in rows]
    if X is not None:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if len(X) != len(rows):
            raise ValueError(f"{len(X)} feature rows for {len(rows)} predictions")
        for row, x, score in zip(rows, X, scores(version, X), strict=True):
            row.setdefault("features", x)
            row.setdefault("score", score)
    objs = [prediction(version, **_own(shared) | row) for row in rows]
    return PredictionLog.objects.bulk_create(objs, batch_size=batch_size)


def _own(fields: dict) -> dict:
    """The fields with a copy of each dict or list (attributes), so rows share none."""
    return {k: copy.deepcopy(v) if isinstance(v, dict | list) else v for k, v in fields.items()}


def prediction_log(version: MLModelVersion, **fields) -> PredictionLog:
    """One stored prediction row of ``version`` (see ``prediction``)."""
    return predictions_log(version, [fields])[0]


# --- verdicts and alerts ---------------------------------------------------------------


def verdict(prediction: PredictionLog, *, label: int, user=None, note: str = "") -> FeedbackEvent:
    """An analyst's verdict on a stored prediction, recorded as the API records it: the
    row's label is set and the verdict appended to its history."""
    return feedback_record_many(predictions=[prediction], label=label, user=user, note=note)[0]


def alert(model, **fields) -> Alert:
    """A stored alert of ``model`` (an open drift warning, seen now) with the given fields,
    without the audit event ``monitoring.alerts.alert_raise`` records: for tests that
    need an alert to exist rather than to be raised."""
    n, now = serial(), timezone.now()
    defaults = {
        "kind": "drift",
        "severity": Alert.Severity.WARNING,
        "dedupe_key": f"test-alert-{n}",
        "title": f"test alert {n}",
        "first_seen": now,
        "last_seen": now,
    }
    return Alert.objects.create(model=model, **defaults | fields)
