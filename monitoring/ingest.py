"""Batch ingest of logged predictions: validate everything, then store all or nothing.

Validation is one tight pass over the items plus vectorised checks on the feature
matrix; no serializer is built per row. Storage is idempotent on request_id: a
repeated item counts as a duplicate, also when two requests carrying it race
(PostgreSQL: COPY into a staging table, then INSERT ... ON CONFLICT DO NOTHING;
SQLite: a bulk insert that ignores conflicts inside one write transaction).
"""

import io
import json
import math
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from monitoring.models import PredictionLog
from registry.models import MLModel, MLModelVersion
from registry.routing import NoServingVersion, router

MAX_ITEMS = 10_000
ITEM_KEYS = {
    "request_id",
    "model",
    "version",
    "incident_id",
    "entity",
    "features",
    "score",
    "confidence",
    "attributes",
    "timestamp",
    "role",
}
REQUIRED = ("request_id", "model", "entity", "features", "score")
MAX_LEN = {"request_id": 128, "incident_id": 128, "entity": 256, "model": 64, "version": 32}
MAX_ATTRIBUTES, MAX_ATTRIBUTE_LEN = 16, 64
ROLES = {r.value for r in PredictionLog.Role}
FUTURE_SLACK = timedelta(minutes=5)


class IngestError(Exception):
    """The batch is rejected whole; `errors` lists every failing item, field and reason."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.message = message
        self.errors = errors


@dataclass
class _Plan:
    """What a valid batch will store, column by column."""

    versions: list = field(default_factory=list)
    request_ids: list = field(default_factory=list)
    incident_ids: list = field(default_factory=list)
    entities: list = field(default_factory=list)
    features: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    confidences: list = field(default_factory=list)
    roles: list = field(default_factory=list)
    attributes: list = field(default_factory=list)
    timestamps: list = field(default_factory=list)


@dataclass
class IngestResult:
    received: int
    accepted: int
    duplicates: int


class _Resolver:
    """Caches models, versions and schemas for one batch."""

    def __init__(self):
        self.models: dict[str, MLModel | None] = {}
        self.versions: dict[tuple[str, str], MLModelVersion | None] = {}
        self.schemas: dict[int, tuple[list[str], dict[str, dict]]] = {}
        self.fast: dict[int, tuple[set, object]] = {}
        self.routers: dict[int, object] = {}

    def model(self, name: str) -> MLModel | None:
        if name not in self.models:
            self.models[name] = MLModel.objects.filter(name=name).first()
        return self.models[name]

    def version(self, model: MLModel, semver: str) -> MLModelVersion | None:
        key = (model.name, semver)
        if key not in self.versions:
            self.versions[key] = model.versions.filter(version=semver).first()
        return self.versions[key]

    def route(self, model: MLModel, entity: str):
        if model.pk not in self.routers:
            self.routers[model.pk] = router(model)
        return self.routers[model.pk](entity)

    def fast_spec(self, version: MLModelVersion):
        if version.pk not in self.fast:
            names = version.feature_names
            self.fast[version.pk] = (set(names), operator.itemgetter(*names))
        return self.fast[version.pk]

    def schema(self, version: MLModelVersion):
        if version.pk not in self.schemas:
            names = version.feature_names
            categorical = {
                f["name"]: f for f in version.feature_schema if f["type"] == "categorical"
            }
            self.schemas[version.pk] = (names, categorical)
        return self.schemas[version.pk]


def _string(item, key, errors, i, required=False):
    value = item.get(key)
    if value is None:
        if required:
            errors.append({"index": i, "field": key, "reason": "is required"})
        return ""
    if not isinstance(value, str) or not value.strip():
        errors.append({"index": i, "field": key, "reason": "must be a non-empty string"})
        return ""
    if len(value) > MAX_LEN[key]:
        errors.append(
            {"index": i, "field": key, "reason": f"longer than {MAX_LEN[key]} characters"}
        )
        return ""
    return value


def _probability(value, key, errors, i):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append({"index": i, "field": key, "reason": "must be a number"})
        return math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        errors.append({"index": i, "field": key, "reason": "must be within [0, 1]"})
        return math.nan
    return float(value)


_NUMBERS = {int, float}


def _fast_row(values, spec):
    """The common case in C-speed steps: exact key set, every value an int or float.
    Anything else (level names, wrong types, missing keys) goes to `_features`."""
    names, getter = spec
    if type(values) is not dict or values.keys() != names:
        return None
    row = getter(values)
    if not isinstance(row, tuple):
        row = (row,)
    return row if set(map(type, row)) <= _NUMBERS else None


def _features(item, names, categorical, errors, i) -> list[float] | None:
    values = item.get("features")
    if not isinstance(values, dict):
        errors.append({"index": i, "field": "features", "reason": "must be an object"})
        return None
    unknown = values.keys() - set(names)
    missing = [n for n in names if n not in values]
    for name in sorted(unknown)[:10]:
        errors.append({"index": i, "field": f"features.{name}", "reason": "unknown feature"})
    for name in missing[:10]:
        errors.append({"index": i, "field": f"features.{name}", "reason": "missing feature"})
    if unknown or missing:
        return None
    row = []
    for name in names:
        value = values[name]
        if name in categorical and isinstance(value, str):
            levels = categorical[name].get("levels") or []
            if value not in levels:
                errors.append(
                    {
                        "index": i,
                        "field": f"features.{name}",
                        "reason": f"unknown level {value[:32]!r}",
                    }
                )
                return None
            value = levels.index(value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append({"index": i, "field": f"features.{name}", "reason": "must be a number"})
            return None
        row.append(float(value))
    return row


def _attributes(item, errors, i) -> dict:
    value = item.get("attributes", {})
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        errors.append(
            {
                "index": i,
                "field": "attributes",
                "reason": f"must be an object with at most {MAX_ATTRIBUTES} keys",
            }
        )
        return {}
    for key, v in value.items():
        if not isinstance(v, str) or len(key) > MAX_ATTRIBUTE_LEN or len(v) > MAX_ATTRIBUTE_LEN:
            errors.append(
                {
                    "index": i,
                    "field": f"attributes.{key[:MAX_ATTRIBUTE_LEN]}",
                    "reason": f"must be a string of at most {MAX_ATTRIBUTE_LEN} characters",
                }
            )
            return {}
    return value


def _timestamp(item, errors, i, now: datetime) -> datetime:
    value = item.get("timestamp")
    if value is None:
        return now
    parsed = None
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None:
        errors.append({"index": i, "field": "timestamp", "reason": "must be an ISO 8601 datetime"})
        return now
    if timezone.is_naive(parsed):
        errors.append({"index": i, "field": "timestamp", "reason": "needs a UTC offset"})
        return now
    oldest = now - timedelta(days=settings.PREDICTION_RETENTION_DAYS)
    if parsed > now + FUTURE_SLACK or parsed < oldest:
        errors.append(
            {
                "index": i,
                "field": "timestamp",
                "reason": "outside the accepted range (retention period to now)",
            }
        )
    return parsed


def _version_for(item, model, resolver, errors, i):
    """The version and serving role of an item: named, or routed by entity."""
    semver = _string(item, "version", errors, i)
    role = item.get("role")
    if role is not None and role not in ROLES:
        errors.append({"index": i, "field": "role", "reason": f"must be one of {sorted(ROLES)}"})
    if semver:
        version = resolver.version(model, semver)
        if version is None:
            errors.append({"index": i, "field": "version", "reason": f"unknown version {semver}"})
            return None, ""
        if role is None:
            role = (
                "champion"
                if version.status == "production"
                else ("challenger" if version.traffic_percentage > 0 else "shadow")
            )
        return version, role
    try:
        served = resolver.route(model, item.get("entity") or "")
    except NoServingVersion as exc:
        errors.append({"index": i, "field": "version", "reason": str(exc)})
        return None, ""
    return served.version, role or served.arm


def _validate_item(item, i, resolver, plan, errors, now):
    if not isinstance(item, dict):
        errors.append({"index": i, "field": "", "reason": "must be an object"})
        return
    for key in sorted(item.keys() - ITEM_KEYS)[:5]:
        errors.append({"index": i, "field": str(key)[:64], "reason": "unknown field"})
    for key in REQUIRED:
        if key not in item:
            errors.append({"index": i, "field": key, "reason": "is required"})
    before = len(errors)
    model_name = _string(item, "model", errors, i, required=True)
    model = resolver.model(model_name) if model_name else None
    if model_name and model is None:
        errors.append({"index": i, "field": "model", "reason": f"unknown model {model_name}"})
    version, role = _version_for(item, model, resolver, errors, i) if model else (None, "")
    request_id = _string(item, "request_id", errors, i, required=True)
    incident_id = _string(item, "incident_id", errors, i)
    entity = _string(item, "entity", errors, i, required=True)
    score = _probability(item.get("score"), "score", errors, i) if "score" in item else math.nan
    confidence = item.get("confidence")
    if confidence is not None:
        confidence = _probability(confidence, "confidence", errors, i)
    attributes = _attributes(item, errors, i)
    timestamp = _timestamp(item, errors, i, now)
    row = None
    if version is not None:
        row = _fast_row(item.get("features"), resolver.fast_spec(version))
        if row is None:
            row = _features(item, *resolver.schema(version), errors, i)
    if len(errors) > before or row is None:
        return
    plan.versions.append(version)
    plan.request_ids.append(request_id)
    plan.incident_ids.append(incident_id)
    plan.entities.append(entity)
    plan.features.append(row)
    plan.scores.append(score)
    plan.confidences.append(confidence)
    plan.roles.append(role)
    plan.attributes.append(attributes)
    plan.timestamps.append(timestamp)


def predictions_validate(items) -> _Plan:
    if not isinstance(items, list):
        raise IngestError(
            "predictions must be a list",
            [{"index": None, "field": "predictions", "reason": "must be a list"}],
        )
    if not 1 <= len(items) <= MAX_ITEMS:
        raise IngestError(
            f"a batch holds 1 to {MAX_ITEMS} predictions, got {len(items)}",
            [{"index": None, "field": "predictions", "reason": "batch size"}],
        )
    resolver, plan, errors, now = _Resolver(), _Plan(), [], timezone.now()
    for i, item in enumerate(items):
        _validate_item(item, i, resolver, plan, errors, now)
        if len(errors) > 1000:
            errors.append({"index": None, "field": "", "reason": "too many errors; stopped"})
            break
    if not errors:
        _check_matrix(plan, errors)
    if errors:
        failing = len({e["index"] for e in errors if e["index"] is not None})
        raise IngestError(
            f"{failing} of {len(items)} predictions are invalid; nothing was stored", errors
        )
    return plan


def _check_matrix(plan: _Plan, errors: list) -> None:
    """Vectorised: every feature value finite (JSON admits 1e999, which parses to inf)."""
    by_width: dict[int, list[int]] = {}
    for i, row in enumerate(plan.features):
        by_width.setdefault(len(row), []).append(i)
    for indexes in by_width.values():
        matrix = np.asarray([plan.features[i] for i in indexes], dtype=np.float64)
        bad_rows, bad_cols = np.nonzero(~np.isfinite(matrix))
        for r, c in zip(bad_rows[:1000], bad_cols[:1000], strict=True):
            i = indexes[r]
            name = plan.versions[i].feature_names[c]
            errors.append({"index": i, "field": f"features.{name}", "reason": "must be finite"})


def predictions_ingest(*, items) -> IngestResult:
    """Validate a batch and store it; returns how many were new and how many duplicates."""
    plan = predictions_validate(items)
    if connection.vendor == "postgresql":
        accepted = _store_postgresql(plan)
    else:
        accepted = _store_bulk(plan)
    return IngestResult(received=len(items), accepted=accepted, duplicates=len(items) - accepted)


def _feature_bytes(row: list[float]) -> bytes:
    return np.asarray(row, dtype="<f8").tobytes()


def _decisions(plan: _Plan) -> list[bool]:
    return [s >= v.decision_threshold for s, v in zip(plan.scores, plan.versions, strict=True)]


@transaction.atomic
def _store_bulk(plan: _Plan) -> int:
    existing = set()
    ids = plan.request_ids
    for start in range(0, len(ids), 500):
        existing.update(
            PredictionLog.objects.filter(request_id__in=ids[start : start + 500]).values_list(
                "request_id", flat=True
            )
        )
    now, seen, rows = timezone.now(), set(), []
    for i, decision in enumerate(_decisions(plan)):
        rid = ids[i]
        if rid in existing or rid in seen:
            continue
        seen.add(rid)
        rows.append(
            PredictionLog(
                version=plan.versions[i],
                request_id=rid,
                incident_id=plan.incident_ids[i],
                entity=plan.entities[i],
                features=_feature_bytes(plan.features[i]),
                score=plan.scores[i],
                confidence=plan.confidences[i],
                decision=decision,
                role=plan.roles[i],
                attributes=plan.attributes[i],
                created_at=plan.timestamps[i],
                received_at=now,
            )
        )
    PredictionLog.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COLUMNS = (
    "version_id",
    "request_id",
    "incident_id",
    "entity",
    "features",
    "score",
    "confidence",
    "decision",
    "role",
    "attributes",
    "created_at",
    "received_at",
)


def _feature_hexes(plan: _Plan) -> list[str]:
    """Hex of each row's float64 bytes; one numpy conversion when widths agree."""
    widths = {len(row) for row in plan.features}
    if len(widths) != 1:
        return [_feature_bytes(row).hex() for row in plan.features]
    text = np.asarray(plan.features, dtype="<f8").tobytes().hex()
    step = 16 * widths.pop()
    return [text[k : k + step] for k in range(0, len(text), step)]


def _copy_buffer(plan: _Plan) -> bytes:
    now = timezone.now().isoformat()
    hexes = _feature_hexes(plan)
    out = io.StringIO()
    for i, decision in enumerate(_decisions(plan)):
        confidence = plan.confidences[i]
        fields = (
            str(plan.versions[i].pk),
            plan.request_ids[i].translate(_COPY_ESCAPE),
            plan.incident_ids[i].translate(_COPY_ESCAPE),
            plan.entities[i].translate(_COPY_ESCAPE),
            "\\\\x" + hexes[i],
            repr(plan.scores[i]),
            "\\N" if confidence is None else repr(confidence),
            "t" if decision else "f",
            plan.roles[i],
            json.dumps(plan.attributes[i]).translate(_COPY_ESCAPE),
            plan.timestamps[i].isoformat(),
            now,
        )
        out.write("\t".join(fields))
        out.write("\n")
    return out.getvalue().encode()


@transaction.atomic
def _store_postgresql(plan: _Plan) -> int:
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS prediction_stage AS "
            f"SELECT {columns} FROM monitoring_predictionlog WITH NO DATA"
        )
        cursor.execute("TRUNCATE prediction_stage")
        with cursor.copy(f"COPY prediction_stage ({columns}) FROM STDIN") as copy:
            copy.write(_copy_buffer(plan))
        # DISTINCT ON drops repeats inside the batch; ON CONFLICT the ones already stored
        # (or being stored by a concurrent request, which waits on the unique index).
        cursor.execute(
            f"INSERT INTO monitoring_predictionlog ({columns}) "
            f"SELECT DISTINCT ON (request_id) {columns} FROM prediction_stage "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        return cursor.rowcount
