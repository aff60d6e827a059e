"""Batch ingest of logged predictions: validate everything, then store all or nothing.

Validation checks the batch column by column when every item is well-formed, and
falls back to an item-by-item pass that names every failing item and field; no
serializer is built per row. Storage is idempotent on request_id: a repeated item
counts as a duplicate, also when two requests carrying it race (PostgreSQL: one
COPY when every request_id is new, otherwise COPY into a staging table and
INSERT ... ON CONFLICT DO NOTHING; SQLite: a bulk insert that ignores conflicts
inside one write transaction).
"""

import itertools
import math
import operator
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from core.errors import DomainError
from monitoring.models import PredictionLog
from registry.models import MLModel, MLModelVersion, TrafficSplit
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
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"
# Features are scored as float32 (XGBoost's DMatrix): a value finite in float64 but
# beyond float32 would reach the model as inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)
OUT_OF_FLOAT32 = f"must be within float32 range (|x| <= {FLOAT32_MAX:.8g})"
ERRORS_SHOWN = 1000
CONTENT = ("version", "entity", "incident_id", "score", "confidence", "features")


class IngestError(DomainError):
    """The batch is rejected whole (400); `errors` lists the failing items, fields and
    reasons (the first ERRORS_SHOWN of them), and the API answers them as
    ``details["errors"]`` with the true totals beside them."""

    def __init__(self, message: str, errors: list[dict], **totals: int):
        super().__init__(message, {**totals, "errors": errors})
        self.errors = errors


class IngestConflict(IngestError):
    """A request_id already stored, or repeated in the batch, with other content (409)."""

    status = 409


def _refuse(errors: list[dict], received: int) -> IngestError:
    """The batch's refusal: the true counts, and the first ERRORS_SHOWN errors."""
    failing = len({e["index"] for e in errors if e["index"] is not None})
    shown = errors[:ERRORS_SHOWN]
    message = f"{failing} of {received} predictions are invalid; nothing was stored"
    if len(errors) > len(shown):
        message += f" (the first {len(shown)} of {len(errors)} errors are listed)"
    return IngestError(
        message,
        shown,
        invalid_items=failing,
        error_count=len(errors),
        errors_shown_max=ERRORS_SHOWN,
    )


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
    # the features as one float64 matrix, when every row has the same width
    matrix: np.ndarray | None = None


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
        self.arms: dict[int, tuple[int | None, int | None]] = {}

    def model(self, name: str) -> MLModel | None:
        if name not in self.models:
            self.models[name] = MLModel.objects.filter(name=name).first()
        return self.models[name]

    def version(self, model: MLModel, semver: str) -> MLModelVersion | None:
        key = (model.name, semver)
        if key not in self.versions:
            self.versions[key] = model.versions.filter(version=semver).first()
        return self.versions[key]

    def router(self, model: MLModel):
        if model.pk not in self.routers:
            self.routers[model.pk] = router(model)
        return self.routers[model.pk]

    def route(self, model: MLModel, entity: str):
        return self.router(model)(entity)

    def serving(self, model: MLModel) -> tuple[int | None, int | None]:
        """(champion pk, challenger pk) of the model's current traffic split; without
        one the production version is the champion. History of splits is not kept, so
        a role is checked against the split at ingest time."""
        if model.pk not in self.arms:
            split = TrafficSplit.objects.filter(model_id=model.pk).values_list(
                "champion_id", "challenger_id"
            )
            champion, challenger = split.first() or (None, None)
            if champion is None:
                production = model.production_version()
                champion, challenger = (production.pk if production else None), None
            self.arms[model.pk] = (champion, challenger)
        return self.arms[model.pk]

    def role(self, model: MLModel, version: MLModelVersion, role: str | None):
        """The item's role (its own, or the one the version serves in), and the reason
        the role disagrees with the split, if it does."""
        champion, challenger = self.serving(model)
        serves = (
            "champion" if version.pk == champion
            else "challenger" if version.pk == challenger
            else "shadow"
        )  # fmt: skip
        if role is None or role == serves:
            return serves, None
        if serves == "shadow":
            return role, f"version {version.version} is not the {role} of the traffic split"
        return role, f"version {version.version} serves as {serves}, not {role}"

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
    if not _storable(value):
        errors.append({"index": i, "field": key, "reason": UNSTORABLE})
        return ""
    return value


def _probability(value, key, errors, i):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append({"index": i, "field": key, "reason": "must be a number"})
        return math.nan
    value = _to_float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        errors.append({"index": i, "field": key, "reason": "must be within [0, 1]"})
        return math.nan
    return value


_NUMBERS = {int, float}
_NO_ATTRIBUTES: dict = {}


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
        errors.append(
            {"index": i, "field": f"features.{_shown(name)}", "reason": "unknown feature"}
        )
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
        row.append(_to_float(value))
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
                    "field": f"attributes.{_shown(key)}",
                    "reason": f"must be a string of at most {MAX_ATTRIBUTE_LEN} characters",
                }
            )
            return {}
        if not _storable(key + v):
            errors.append({"index": i, "field": f"attributes.{_shown(key)}", "reason": UNSTORABLE})
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
        return now
    return parsed.astimezone(UTC)


def _version_for(item, model, resolver, errors, i):
    """The version and serving role of an item: named, or routed by entity."""
    semver = _string(item, "version", errors, i)
    role = item.get("role")
    if role is not None and role not in ROLES:
        errors.append({"index": i, "field": "role", "reason": f"must be one of {sorted(ROLES)}"})
        return None, ""
    if semver:
        version = resolver.version(model, semver)
        if version is None:
            errors.append({"index": i, "field": "version", "reason": f"unknown version {semver}"})
            return None, ""
    else:
        try:
            version = resolver.route(model, item.get("entity") or "").version
        except NoServingVersion as exc:
            errors.append({"index": i, "field": "version", "reason": str(exc)})
            return None, ""
    role, disagreement = resolver.role(model, version, role)
    if disagreement:
        errors.append({"index": i, "field": "role", "reason": disagreement})
    return version, role


def _validate_item(item, i, resolver, plan, errors, now):
    if not isinstance(item, dict):
        errors.append({"index": i, "field": "", "reason": "must be an object"})
        return
    for key in sorted(item.keys() - ITEM_KEYS)[:5]:
        errors.append({"index": i, "field": _shown(str(key)), "reason": "unknown field"})
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
    resolver, now = _Resolver(), timezone.now()
    plan = _fast_plan(items, resolver, now)
    if plan is not None:
        _check_repeats(plan)
        return plan
    plan = _Plan()
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        _validate_item(item, i, resolver, plan, errors, now)
    if not errors:
        _check_matrix(plan, errors)
    if errors:
        raise _refuse(errors, len(items))
    _check_repeats(plan)
    return plan


def _clean_strings(values: list, limit: int) -> bool:
    """Every value a non-blank string of at most `limit` characters (`_string`'s rules)."""
    if not values:
        return True
    return (
        set(map(type, values)) == {str}
        and max(map(len, values)) <= limit
        and all(map(str.strip, values))
        and _storable("".join(values))
    )


def _shown(name: str) -> str:
    """A client-supplied name as it can be echoed in an error: cut to 64 characters,
    and escaped when it holds what the JSON answer cannot carry."""
    name = name[:64]
    return name if _storable(name) else ascii(name)


def _storable(text: str) -> bool:
    """Text the database can hold: no NUL and no unpaired surrogate (the standard
    JSON parser lets both through as \\u escapes)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _optional_strings(items: list, key: str) -> list | None:
    values = [item.get(key) for item in items]
    given = [v for v in values if v is not None]
    if not _clean_strings(given, MAX_LEN[key]):
        return None
    return values if len(given) == len(values) else ["" if v is None else v for v in values]


def _numbers_within(values: list, low: float, high: float) -> list | None:
    """Floats of `values` when every one is an int or float in [low, high] (not bool)."""
    if not set(map(type, values)) <= _NUMBERS:
        return None
    try:
        array = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer literal beyond float range
        return None
    if not (np.isfinite(array).all() and (array >= low).all() and (array <= high).all()):
        return None
    return array.tolist()


def _fast_timestamps(items: list, now: datetime) -> list | None:
    values = [item.get("timestamp") for item in items]
    given = [v for v in values if v is not None]
    if not given:
        return [now] * len(values)
    if set(map(type, given)) != {str} or max(map(len, given)) > 40:
        return None
    try:
        parsed = [now if v is None else datetime.fromisoformat(v) for v in values]
    except ValueError:
        return None
    if any(p.tzinfo is None for p in parsed):
        return None
    oldest = now - timedelta(days=settings.PREDICTION_RETENTION_DAYS)
    if min(parsed) < oldest or max(parsed) > now + FUTURE_SLACK:
        return None
    # Python admits offsets the database does not (seconds, microseconds, +23:59):
    # stored in UTC, the instant is kept and every database takes it.
    return [p if p.tzinfo is UTC else p.astimezone(UTC) for p in parsed]


def _fast_attributes(items: list) -> list | None:
    values = [item.get("attributes", _NO_ATTRIBUTES) for item in items]
    if set(map(type, values)) != {dict} or max(map(len, values)) > MAX_ATTRIBUTES:
        return None
    keys = [k for value in values for k in value]
    levels = [v for value in values for v in value.values()]
    if keys and (
        set(map(type, levels)) != {str}
        or max(map(len, keys)) > MAX_ATTRIBUTE_LEN
        or max(map(len, levels)) > MAX_ATTRIBUTE_LEN
        or not _storable("".join(keys) + "".join(levels))
    ):
        return None
    return values


def _fast_versions(items, model, entities, resolver) -> tuple[list, list] | None:
    """Each item's version and role: named, or routed by entity (`_version_for`)."""
    semvers = [item.get("version") for item in items]
    roles = [item.get("role") for item in items]
    if not all(role is None or (type(role) is str and role in ROLES) for role in roles):
        return None
    decide = resolver.router(model)
    fixed = getattr(decide, "fixed", None)
    champion, challenger = resolver.serving(model)
    versions, arms = [], []
    for semver, role, entity in zip(semvers, roles, entities, strict=True):
        if semver is None:
            try:
                version = (fixed or decide(entity)).version
            except NoServingVersion:
                return None
        elif type(semver) is not str or not semver.strip() or len(semver) > MAX_LEN["version"]:
            return None
        else:
            version = resolver.version(model, semver)
            if version is None:
                return None
        serves = (
            "champion" if version.pk == champion
            else "challenger" if version.pk == challenger
            else "shadow"
        )  # fmt: skip
        if role is not None and role != serves:
            return None  # the item-by-item pass names the disagreement
        versions.append(version)
        arms.append(serves)
    return versions, arms


def _fast_plan(items: list, resolver: "_Resolver", now: datetime) -> _Plan | None:
    """The whole batch checked column by column, for batches where every item is
    well-formed. Returns None at the first irregularity: the item-by-item pass then
    names every failing item and field (and accepts what this pass is too strict for,
    such as categorical level names)."""
    if not all(type(item) is dict and item.keys() <= ITEM_KEYS for item in items):
        return None
    try:
        request_ids = [item["request_id"] for item in items]
        entities = [item["entity"] for item in items]
        model_names = {item["model"] for item in items}
        features = [item["features"] for item in items]
        raw_scores = [item["score"] for item in items]
    except (KeyError, TypeError):  # a missing key, or an unhashable model name
        return None
    if len(model_names) != 1:
        return None
    model_name = model_names.pop()
    if not (
        _clean_strings([model_name], MAX_LEN["model"])
        and _clean_strings(request_ids, MAX_LEN["request_id"])
        and _clean_strings(entities, MAX_LEN["entity"])
    ):
        return None
    model = resolver.model(model_name)
    incident_ids = _optional_strings(items, "incident_id")
    scores = _numbers_within(raw_scores, 0.0, 1.0)
    confidences = [item.get("confidence") for item in items]
    given = [c for c in confidences if c is not None]
    if given and _numbers_within(given, 0.0, 1.0) is None:
        return None
    attributes = _fast_attributes(items)
    timestamps = _fast_timestamps(items, now)
    if (
        model is None
        or incident_ids is None
        or scores is None
        or attributes is None
        or timestamps is None
    ):
        return None
    routed = _fast_versions(items, model, entities, resolver)
    if routed is None:
        return None
    versions, roles = routed
    specs = {id(v): resolver.fast_spec(v) for v in _distinct(versions)}
    rows = [
        _fast_row(values, specs[id(version)])
        for values, version in zip(features, versions, strict=True)
    ]
    if None in rows:
        return None
    plan = _Plan(
        versions=versions,
        request_ids=request_ids,
        incident_ids=incident_ids,
        entities=entities,
        features=rows,
        scores=scores,
        confidences=[c if c is None else float(c) for c in confidences],
        roles=roles,
        attributes=attributes,
        timestamps=timestamps,
    )
    width = len(rows[0])
    if all(len(row) == width for row in rows):
        # _fast_row let through only ints and floats, so nothing but an integer beyond
        # float range can fail here (the item-by-item pass then names it)
        try:
            plan.matrix = np.fromiter(
                itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width
            ).reshape(len(rows), width)
        except OverflowError:
            return None
    errors: list = []
    _check_matrix(plan, errors)
    return None if errors else plan


def _float_matrix(rows: list) -> np.ndarray:
    """Rows as float64; an integer beyond float range (valid JSON) becomes inf, so the
    finiteness check names it instead of the conversion failing."""
    try:
        return np.asarray(rows, dtype=np.float64)
    except OverflowError:
        return np.asarray([[_to_float(value) for value in row] for row in rows], dtype=np.float64)


def _to_float(value) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _check_matrix(plan: _Plan, errors: list) -> None:
    """Vectorised, per version: every feature value finite (JSON admits 1e999, which
    parses to inf) and within float32 range, every categorical code one of the levels.
    One error per failing row: its first failing feature."""
    distinct = _distinct(plan.versions)
    if len(distinct) == 1:
        groups = [(distinct[0], list(range(len(plan.versions))))]
    else:
        by_version: dict[int, list[int]] = {}
        for i, version in enumerate(plan.versions):
            by_version.setdefault(id(version), []).append(i)
        groups = [(plan.versions[rows[0]], rows) for rows in by_version.values()]
    for version, indexes in groups:
        if plan.matrix is not None:
            matrix = plan.matrix if len(groups) == 1 else plan.matrix[indexes]
        else:
            matrix = _float_matrix([plan.features[i] for i in indexes])
        for r, c, reason in _bad_cells(matrix, version.feature_schema):
            name = version.feature_names[c]
            errors.append({"index": indexes[r], "field": f"features.{name}", "reason": reason})


def _bad_cells(matrix: np.ndarray, schema: list[dict]) -> list[tuple[int, int, str]]:
    """(row, column, reason) of the first bad value of each row that has one."""
    finite = np.isfinite(matrix)
    with np.errstate(invalid="ignore"):
        bad = ~finite | (np.abs(matrix) > FLOAT32_MAX)
        levels = {}
        for j, spec in enumerate(schema[: matrix.shape[1]]):
            if spec.get("type") == "categorical":
                column, levels[j] = matrix[:, j], len(spec.get("levels") or [])
                bad[:, j] |= ~((column >= 0) & (column < levels[j]) & (np.floor(column) == column))
    cells = []
    for r in np.flatnonzero(bad.any(axis=1)):
        c = int(np.argmax(bad[r]))
        if not finite[r, c]:
            reason = "must be finite"
        elif abs(matrix[r, c]) > FLOAT32_MAX:
            reason = OUT_OF_FLOAT32
        else:
            reason = f"must be a level code 0 to {levels[c] - 1} or a level name"
        cells.append((int(r), c, reason))
    return cells


def _content(plan: _Plan, i: int) -> tuple:
    """What a retry must repeat of item i (CONTENT's order); the time is not part of
    it, since a retry without a timestamp is stamped anew."""
    return (
        plan.versions[i].pk,
        plan.entities[i],
        plan.incident_ids[i],
        plan.scores[i],
        plan.confidences[i],
        _feature_bytes(plan.features[i]),
    )


def _conflict(index: int, stored: tuple, sent: tuple, where: str) -> dict:
    differing = [name for name, a, b in zip(CONTENT, stored, sent, strict=True) if a != b]
    return {
        "index": index,
        "field": "request_id",
        "reason": f"{where} with a different {', '.join(differing)}",
    }


def _raise_conflicts(conflicts: list[dict], received: int) -> None:
    if conflicts:
        raise IngestConflict(
            f"{len(conflicts)} of {received} predictions reuse a request_id with other "
            "content; nothing was stored",
            conflicts[:ERRORS_SHOWN],
            invalid_items=len(conflicts),
            error_count=len(conflicts),
            errors_shown_max=ERRORS_SHOWN,
        )


def _check_repeats(plan: _Plan) -> None:
    """A request_id repeated inside the batch must carry the same content each time."""
    ids = plan.request_ids
    if len(set(ids)) == len(ids):
        return
    first: dict[str, int] = {}
    conflicts = []
    for i, rid in enumerate(ids):
        j = first.setdefault(rid, i)
        if j != i and _content(plan, j) != _content(plan, i):
            conflicts.append(
                _conflict(i, _content(plan, j), _content(plan, i), f"repeats item {j}")
            )
    _raise_conflicts(conflicts, len(ids))


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
    thresholds = {id(v): v.decision_threshold for v in _distinct(plan.versions)}
    return [s >= thresholds[id(v)] for s, v in zip(plan.scores, plan.versions, strict=True)]


def _distinct(versions: list) -> list:
    """The distinct version objects of a batch, by identity: model instances compare
    equal by primary key, so a set would fold two instances of one row together."""
    return list({id(v): v for v in versions}.values())


def _version_ids(versions: list) -> list[str]:
    ids = {id(v): str(v.pk) for v in _distinct(versions)}
    return [ids[id(v)] for v in versions]


@transaction.atomic
def _store_bulk(plan: _Plan) -> int:
    existing: dict[str, tuple] = {}
    ids = plan.request_ids
    for start in range(0, len(ids), 500):
        stored = PredictionLog.objects.filter(request_id__in=ids[start : start + 500])
        for rid, version_id, entity, incident_id, score, confidence, features in stored.values_list(
            "request_id", "version_id", "entity", "incident_id", "score", "confidence", "features"
        ):
            existing[rid] = (version_id, entity, incident_id, score, confidence, bytes(features))
    conflicts = [
        _conflict(i, existing[rid], _content(plan, i), "already stored")
        for i, rid in enumerate(ids)
        if rid in existing and existing[rid] != _content(plan, i)
    ]
    _raise_conflicts(conflicts, len(ids))
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
    matrix = plan.matrix
    if matrix is None:
        widths = {len(row) for row in plan.features}
        if len(widths) != 1:
            return [_feature_bytes(row).hex() for row in plan.features]
        matrix = np.asarray(plan.features, dtype="<f8")
    text = matrix.astype("<f8", copy=False).tobytes().hex()
    step = 16 * matrix.shape[1]
    return [text[k : k + step] for k in range(0, len(text), step)]


def _copy_text(values: list[str]) -> list[str]:
    """COPY text escaping, applied only when some value needs it."""
    joined = "".join(values)
    if "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return [value.translate(_COPY_ESCAPE) for value in values]
    return values


def _copy_buffer(plan: _Plan) -> bytes:
    """The batch as COPY text, built column by column."""
    now = timezone.now().isoformat()
    n = len(plan.request_ids)
    columns = (
        _version_ids(plan.versions),
        _copy_text(plan.request_ids),
        _copy_text(plan.incident_ids),
        _copy_text(plan.entities),
        ["\\\\x" + text for text in _feature_hexes(plan)],
        list(map(repr, plan.scores)),
        ["\\N" if c is None else repr(c) for c in plan.confidences],
        ["t" if decision else "f" for decision in _decisions(plan)],
        plan.roles,
        _copy_text([orjson.dumps(value).decode() for value in plan.attributes]),
        [timestamp.isoformat() for timestamp in plan.timestamps],
        [now] * n,
    )
    return ("\n".join(map("\t".join, zip(*columns, strict=True))) + "\n").encode()


DEADLOCK_RETRIES = 6


def _deadlocked(exc: Exception) -> bool:
    return isinstance(exc, psycopg.errors.DeadlockDetected) or isinstance(
        exc.__cause__, psycopg.errors.DeadlockDetected
    )


@transaction.atomic
def _store_postgresql(plan: _Plan) -> int:
    """Store a batch; each attempt runs in a savepoint. Concurrent batches that share
    request_ids wait for each other on the unique index, and when they reach the shared
    ids in opposite orders PostgreSQL breaks the deadlock by failing one statement: that
    attempt is undone and retried, by which time the other batch has committed."""
    columns = ", ".join(COLUMNS)
    buffer = _copy_buffer(plan)
    if len(set(plan.request_ids)) == len(plan.request_ids):
        # Optimistic: a batch of new request_ids goes in with one COPY. A request_id
        # already stored (a retry) or stored meanwhile by a concurrent request fails
        # the COPY; the conflict-checked path below then stores only what is new.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                with cursor.copy(f"COPY monitoring_predictionlog ({columns}) FROM STDIN") as copy:
                    copy.write(buffer)
            return len(plan.request_ids)
        except (IntegrityError, OperationalError, psycopg.Error) as exc:
            if not (_deadlocked(exc) or isinstance(exc, (IntegrityError, psycopg.IntegrityError))):
                raise
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            with transaction.atomic():
                accepted = _insert_staged(buffer, columns)
                _raise_conflicts(_staged_conflicts(plan), len(plan.request_ids))
                return accepted
        except (OperationalError, psycopg.Error) as exc:
            if not _deadlocked(exc) or attempt == DEADLOCK_RETRIES:
                raise
            # Several batches can meet again at once: a short random wait lets the one
            # that won commit first (0-50 ms, then 0-100 ms, ...).
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")


def _insert_staged(buffer: bytes, columns: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS prediction_stage AS "
            f"SELECT {columns} FROM monitoring_predictionlog WITH NO DATA"
        )
        cursor.execute("TRUNCATE prediction_stage")
        with cursor.copy(f"COPY prediction_stage ({columns}) FROM STDIN") as copy:
            copy.write(buffer)
        # DISTINCT ON drops repeats inside the batch; ON CONFLICT the ones already stored
        # (or being stored by a concurrent request, which waits on the unique index).
        cursor.execute(
            f"INSERT INTO monitoring_predictionlog ({columns}) "
            f"SELECT DISTINCT ON (request_id) {columns} FROM prediction_stage "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        return cursor.rowcount


def _staged_conflicts(plan: _Plan) -> list[dict]:
    """Items whose request_id is stored with other content: after the INSERT, so that
    a concurrent batch holding the same request_id has committed and is compared too."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (s.request_id) s.request_id, p.version_id, p.entity, "
            "p.incident_id, p.score, p.confidence, p.features "
            "FROM prediction_stage s JOIN monitoring_predictionlog p USING (request_id) "
            "WHERE (s.version_id, s.entity, s.incident_id, s.score, s.confidence, s.features) "
            "IS DISTINCT FROM "
            "(p.version_id, p.entity, p.incident_id, p.score, p.confidence, p.features)"
        )
        stored = {rid: (*rest[:-1], bytes(rest[-1])) for rid, *rest in cursor.fetchall()}
    first: dict[str, int] = {}
    for i, rid in enumerate(plan.request_ids):
        first.setdefault(rid, i)
    return [
        _conflict(first[rid], content, _content(plan, first[rid]), "already stored")
        for rid, content in sorted(stored.items(), key=lambda kv: first[kv[0]])
    ]
