"""Fairness audit services: create an audit, run it on a version's data, store the result.

Two data sources: the held-out evaluation set stored at registration (scores
from the version's own booster against its decision threshold), or the
prediction log's rows that carry an analyst verdict over a period (the decision
the detector actually took, and the verdict as the label). Either way the
Django-free core (`fairness.metrics_core`) does the arithmetic.
"""

import io
import re
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from core.audit import audit_record
from core.errors import DomainError
from core.models import TaskDelivery
from core.quarantine import crash_guarded
from core.queue import enqueue_on_commit
from fairness import metrics_core
from fairness.models import FairnessAudit
from monitoring.alerts import alert_raise, alert_task_quarantined
from monitoring.models import PredictionLog
from registry.artifacts import artifact_get, artifact_relpath
from registry.models import MLModelVersion
from registry.services import version_load_booster

Source = FairnessAudit.Source
Status = FairnessAudit.Status
Trigger = FairnessAudit.Trigger

ATTRIBUTE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ATTRIBUTES = 3
# Logged rows without the attribute form their own group instead of vanishing.
MISSING = "(missing)"
# Share of the work done when the data is loaded; the bootstrap fills the rest.
LOADED = 0.1
PROGRESS_STEP = 0.05


class AuditInputError(DomainError):
    """The audit cannot run on what was asked for (400); `details` names the field."""


def _check_request(source, attributes, period_start, period_end) -> list[str]:
    if source not in Source.values:
        raise AuditInputError(
            f"source must be one of {', '.join(Source.values)}", {"field": "source"}
        )
    attributes = list(attributes or [])
    if not attributes or len(attributes) > MAX_ATTRIBUTES:
        raise AuditInputError(
            f"give 1 to {MAX_ATTRIBUTES} sensitive attributes", {"field": "attributes"}
        )
    for i, name in enumerate(attributes):
        if not isinstance(name, str) or not ATTRIBUTE_RE.match(name):
            raise AuditInputError(
                "attribute names are identifiers (letters, digits, underscore)",
                {"field": f"attributes[{i}]"},
            )
    if len(set(attributes)) != len(attributes):
        raise AuditInputError("attributes repeat", {"field": "attributes"})
    if source == Source.LOGGED:
        if period_start is None or period_end is None:
            raise AuditInputError(
                "an audit of logged predictions needs period_start and period_end",
                {"field": "period_start" if period_start is None else "period_end"},
            )
        if period_start >= period_end:
            raise AuditInputError("period_start must be before period_end", {"field": "period"})
    return attributes


def fairness_audit_check_data(
    *, version: MLModelVersion, source: str, attributes, period_start=None, period_end=None
) -> list[str]:
    """Refuse, before anything is stored, an audit whose data is absent.

    Edges (API, pages, command) call this; it reads but never writes.
    """
    attributes = _check_request(source, attributes, period_start, period_end)
    if source == Source.EVALUATION:
        if not version.evaluation_hash:
            raise AuditInputError(
                f"{version} was registered without an evaluation set", {"field": "source"}
            )
        with np.load(io.BytesIO(_evaluation_bytes(version)), allow_pickle=False) as npz:
            present = set(npz.files)
        missing = [a for a in attributes if a not in present]
        if missing:
            raise AuditInputError(
                f"the evaluation set has no attribute {', '.join(missing)}",
                {"field": "attributes", "available": sorted(present - {"X", "y"})},
            )
        return attributes
    rows = _logged_rows(version, period_start, period_end)
    if not rows.exists():
        raise AuditInputError(
            f"{version} served no predictions with analyst verdicts in that period "
            "(shadow rows do not count: their review followed another version's flags)",
            {"field": "period"},
        )
    for i, name in enumerate(attributes):
        if not rows.filter(attributes__has_key=name).exists():
            raise AuditInputError(
                f"no labelled prediction in that period carries the attribute {name!r}",
                {"field": f"attributes[{i}]"},
            )
    return attributes


@transaction.atomic
def fairness_audit_create(
    *,
    version: MLModelVersion,
    source: str = Source.EVALUATION,
    attributes=("geo_region",),
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    trigger: str = Trigger.MANUAL,
    requested_by=None,
    enqueue: bool = True,
) -> FairnessAudit:
    """Create a pending audit; unless `enqueue` is off, a worker runs it after commit."""
    attributes = _check_request(source, attributes, period_start, period_end)
    if source == Source.EVALUATION and not version.evaluation_hash:
        raise AuditInputError(
            f"{version} was registered without an evaluation set", {"field": "source"}
        )
    audit = FairnessAudit.objects.create(
        version=version,
        source=source,
        attributes=attributes,
        period_start=period_start if source == Source.LOGGED else None,
        period_end=period_end if source == Source.LOGGED else None,
        trigger=trigger,
        requested_by=requested_by,
    )
    audit_record(
        action="fairness.audit_requested",
        actor=requested_by,
        obj=audit,
        model_name=version.model.name,
        payload={
            "version": version.version,
            "source": source,
            "trigger": trigger,
            "attributes": attributes,
            "period": [_iso(audit.period_start), _iso(audit.period_end)],
        },
    )
    if enqueue:
        enqueue_on_commit("fairness.tasks.fairness_audit_execute", audit.pk)
    return audit


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --------------------------------------------------------------------------- data


def _evaluation_bytes(version: MLModelVersion) -> bytes:
    relpath = artifact_relpath(version.evaluation_hash, ".npz")
    return artifact_get(sha=version.evaluation_hash, relpath=relpath)


def _evaluation_data(version: MLModelVersion, attributes: list[str]) -> dict:
    import xgboost as xgb

    with np.load(io.BytesIO(_evaluation_bytes(version)), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    missing = [a for a in attributes if a not in arrays]
    if "y" not in arrays or missing:
        raise AuditInputError(f"the evaluation set lacks labels or attributes {missing}")
    booster = version_load_booster(version=version)
    scores = booster.predict(xgb.DMatrix(arrays["X"], feature_names=booster.feature_names))
    return {
        "y_true": arrays["y"],
        "scores": scores,
        "threshold": version.decision_threshold,
        "sensitive": {a: arrays[a] for a in attributes},
        "summary": {"rows": int(len(arrays["y"])), "threshold": version.decision_threshold},
    }


def _served_rows(version: MLModelVersion, start: datetime, end: datetime):
    """Rows whose decision the SOC acted on (champion or challenger) in [start, end).

    Shadow rows are left out: which incidents analysts reviewed followed another
    version's flags, so their verdicts are no sample of this version's decisions.
    """
    return PredictionLog.objects.filter(
        version=version,
        role__in=[PredictionLog.Role.CHAMPION, PredictionLog.Role.CHALLENGER],
        created_at__gte=start,
        created_at__lt=end,
    )


def _logged_rows(version: MLModelVersion, start: datetime, end: datetime):
    return _served_rows(version, start, end).filter(label__isnull=False)


def _attribute_columns(attributes: list[str]) -> dict:
    return {f"attr_{i}": KeyTextTransform(a, "attributes") for i, a in enumerate(attributes)}


def _strata_counts(qs, keys: dict) -> dict[tuple, int]:
    rows = qs.annotate(**keys).values("decision", *keys).annotate(n=Count("id"))
    return {
        (int(r["decision"]), *(MISSING if r[k] is None else str(r[k]) for k in keys)): r["n"]
        for r in rows
    }


def _review_weights(audit: FairnessAudit, keys: dict, strata: np.ndarray) -> tuple:
    """Inverse review rate per (decision x groups) stratum, and the rates themselves.

    Analysts review most flagged events and few unflagged ones, so the labelled
    rows over-represent flags and a raw FPR on them is inflated and compressed
    between groups. Weighting each labelled row by (served rows / labelled rows)
    of its stratum undoes that when review depends only on the decision and the
    group (inverse probability weighting; docs/fairness.md section 15).
    """
    start, end = _period(audit)
    served = _strata_counts(_served_rows(audit.version, start, end), keys)
    labelled = _strata_counts(_logged_rows(audit.version, start, end), keys)
    unique, inverse = np.unique(strata, axis=0, return_inverse=True)
    rates, per_stratum = [], np.empty(len(unique))
    for i, key in enumerate(unique):
        key = (int(key[0]), *(str(v) for v in key[1:]))
        per_stratum[i] = served[key] / labelled[key]
        rates.append(
            {
                "decision": key[0],
                "groups": list(key[1:]),
                "served": served[key],
                "labelled": labelled[key],
            }
        )
    weights = per_stratum[inverse.reshape(-1)]
    return (None if np.all(per_stratum == 1.0) else weights), rates


def _period(audit: FairnessAudit) -> tuple[datetime, datetime]:
    """The period of an audit of logged predictions (``_check_request`` requires it)."""
    if audit.period_start is None or audit.period_end is None:
        raise AuditInputError(
            "an audit of logged predictions needs period_start and period_end",
            {"field": "period"},
        )
    return audit.period_start, audit.period_end


def _logged_data(audit: FairnessAudit) -> dict:
    """Labels, decisions and attributes of the period's labelled rows as numpy arrays.

    One query for the rows and two aggregates for the review rates; the
    attributes are extracted from the JSON column by the database (`->>`), so no
    model instance or JSON document is built per row.
    """
    keys = _attribute_columns(audit.attributes)
    rows = (
        _logged_rows(audit.version, *_period(audit))
        .annotate(**keys)
        .values_list("label", "decision", *keys)
    )
    table = np.array(list(rows.iterator(chunk_size=20_000)), dtype=object)
    if table.size == 0:
        raise AuditInputError("no predictions with analyst verdicts in the audited period")
    sensitive = {}
    for i, name in enumerate(audit.attributes):
        column = table[:, 2 + i]
        column[np.equal(column, np.array(None, dtype=object))] = MISSING
        sensitive[name] = column.astype(str)
    y_pred = table[:, 1].astype(np.int8)
    strata = np.column_stack([y_pred.astype(str), *sensitive.values()])
    weights, rates = _review_weights(audit, keys, strata)
    return {
        "y_true": table[:, 0].astype(np.int8),
        "y_pred": y_pred,
        "sensitive": sensitive,
        "sample_weight": weights,
        "summary": {
            "rows": int(len(table)),
            "period": [_iso(audit.period_start), _iso(audit.period_end)],
            "weighting": "none (every served row labelled)"
            if weights is None
            else "inverse review rate per decision and group",
            "review_rates": rates,
        },
    }


# --------------------------------------------------------------------------- run


def _progress_writer(audit_id: int, callback):
    """Store progress on the audit every PROGRESS_STEP, and pass it on to `callback`."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        fraction = LOADED + (1 - LOADED) * 0.99 * (done / total if total else 1.0)
        if fraction - last[0] >= PROGRESS_STEP:
            FairnessAudit.objects.filter(pk=audit_id, status=Status.RUNNING).update(
                progress=fraction, heartbeat_at=timezone.now()
            )
            last[0] = fraction
        if callback is not None:
            callback(done, total)

    return report


def _compute(audit: FairnessAudit, progress) -> dict:
    if audit.source == Source.LOGGED:
        data = _logged_data(audit)
    else:
        data = _evaluation_data(audit.version, audit.attributes)
    FairnessAudit.objects.filter(pk=audit.pk, status=Status.RUNNING).update(
        progress=LOADED, heartbeat_at=timezone.now()
    )
    summary = data.pop("summary")
    result = metrics_core.audit(**data, progress=_progress_writer(audit.pk, progress)).to_dict()
    result["data"] = {"source": audit.source, **summary}
    return result


def fairness_audit_execute_now(*, audit_id: int, progress=None) -> FairnessAudit | None:
    """Run a pending audit once (claimed by a conditional update); completed audits are final.

    A running audit is claimed again only when its lease lapsed (its worker died; the
    broker redelivers the task, or the requeue sweep enqueues it again): a second
    message for an audit a worker is running does not run it twice.
    """
    now = timezone.now()
    claimed = (
        FairnessAudit.objects.filter(pk=audit_id)
        .filter(Q(status=Status.PENDING) | _lapsed(now))
        .update(status=Status.RUNNING, progress=0.0, heartbeat_at=now)
    )
    if not claimed:
        return None
    audit = FairnessAudit.objects.select_related("version__model").get(pk=audit_id)
    # Counted per audit after the claim, so one body runs under the key at a time, and
    # redeliveries and the requeue sweep's new messages add up alike.
    return crash_guarded(
        key=f"fairness.audit:{audit.pk}",
        task="fairness.tasks.fairness_audit_execute",
        label=str(audit),
        body=lambda: _run(audit, progress),
        on_quarantine=lambda delivery, first: _quarantined(audit, delivery),
    )


def _run(audit: FairnessAudit, progress) -> FairnessAudit | None:
    try:
        result = _compute(audit, progress)
    except (ConnectionError, TimeoutError):
        # Transient: leave it running so the task's retry claims it again.
        raise
    except Exception as exc:
        _fail(audit, str(exc))
        if isinstance(exc, AuditInputError | ValueError):
            audit.refresh_from_db()
            return audit
        raise
    return _complete(audit, result)


def _quarantined(audit: FairnessAudit, delivery: TaskDelivery) -> FairnessAudit:
    """The audit killed its worker past the limit: failed, with a critical alert."""
    _fail(audit, f"quarantined: {delivery.reason}", code="quarantined")
    alert_task_quarantined(model=audit.version.model, version=audit.version, delivery=delivery)
    audit.refresh_from_db()
    return audit


def _lapsed(now: datetime) -> Q:
    """Running audits whose worker stopped renewing the lease (or never set one)."""
    stale = now - timedelta(seconds=settings.FAIRNESS_AUDIT_LEASE_SECONDS)
    return Q(status=Status.RUNNING) & (Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))


def fairness_audits_pending(*, now: datetime | None = None) -> list[int]:
    """Audits a worker should have but may not: pending for longer than
    ``PENDING_REQUEUE_SECONDS`` (acknowledged with 202 while the broker was down) or
    running with a lapsed lease. The requeue sweep enqueues them again; a duplicate
    message is harmless because an audit is claimed before it runs."""
    now = now or timezone.now()
    waited = now - timedelta(seconds=settings.PENDING_REQUEUE_SECONDS)
    queued = Q(status=Status.PENDING, created_at__lt=waited)
    pending = FairnessAudit.objects.filter(queued | _lapsed(now)).order_by("created_at")
    return list(pending.values_list("pk", flat=True)[:500])


def _fail(audit: FairnessAudit, message: str, *, code: str = "error") -> None:
    with transaction.atomic():
        FairnessAudit.objects.filter(pk=audit.pk, status=Status.RUNNING).update(
            status=Status.FAILED,
            reasons=[{"code": code, "severity": "error", "message": message}],
            completed_at=timezone.now(),
        )
        audit_record(
            action="fairness.audit_failed",
            obj=audit,
            model_name=audit.version.model.name,
            payload={"version": audit.version.version, "error": message[:500]},
        )
        audit.refresh_from_db()
        if audit.trigger == Trigger.SCHEDULE:
            _alert_scheduled(audit)


@transaction.atomic
def _complete(audit: FairnessAudit, result: dict) -> FairnessAudit | None:
    done = FairnessAudit.objects.filter(pk=audit.pk, status=Status.RUNNING).update(
        status=Status.COMPLETE,
        verdict=result["verdict"],
        reasons=result["reasons"],
        result=result,
        progress=1.0,
        completed_at=timezone.now(),
    )
    if not done:
        return None  # a concurrent delivery finished first
    version = audit.version
    audit_record(
        action="fairness.audit_completed",
        obj=audit,
        model_name=version.model.name,
        payload={
            "version": version.version,
            "source": audit.source,
            "verdict": result["verdict"],
            "rows": result["data"]["rows"],
        },
    )
    audit.refresh_from_db()
    if audit.trigger == Trigger.SCHEDULE:
        _alert_scheduled(audit)
    return audit


# --------------------------------------------------------------------------- schedule

ALERT_SEVERITY = {"fail": "critical", "inconclusive": "warning"}


def _dedupe_key(version: MLModelVersion) -> str:
    return f"fairness:{version.model.name}:{version.version}"


def _alert_scheduled(audit: FairnessAudit) -> None:
    """A scheduled audit that does not pass is an alert: critical on fail, else warning."""
    version = audit.version
    if audit.status == Status.FAILED:
        severity, outcome = "warning", "could not run"
    elif audit.verdict in ALERT_SEVERITY:
        severity, outcome = ALERT_SEVERITY[audit.verdict], audit.verdict
    else:
        return
    gated = [r for r in audit.reasons if r.get("severity") in ("fail", "inconclusive", "error")]
    alert_raise(
        model=version.model,
        version=version,
        kind="fairness",
        severity=severity,
        dedupe_key=_dedupe_key(version),
        title=f"Scheduled fairness audit of {version}: {outcome}"[:300],
        details={
            "audit": audit.pk,
            "verdict": audit.verdict,
            "status": audit.status,
            "reasons": [r.get("message", r.get("code")) for r in gated[:10]],
        },
    )


def fairness_schedule_run(
    *, source: str = Source.LOGGED, days: int = 92, attributes=("geo_region",), now=None
) -> list[FairnessAudit]:
    """Audit every production version (the quarterly beat task calls this).

    Idempotent per hour: a redelivered or repeated run in the same hour finds the
    audits it created and adds none. A version with no data to audit gets a
    warning alert instead of an audit.
    """
    end = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    created = []
    production = MLModelVersion.objects.filter(status=MLModelVersion.Status.PRODUCTION)
    for version in production.select_related("model"):
        if version.fairness_audits.filter(trigger=Trigger.SCHEDULE, created_at__gte=end).exists():
            continue
        try:
            fairness_audit_check_data(
                version=version,
                source=source,
                attributes=attributes,
                period_start=start,
                period_end=end,
            )
        except AuditInputError as exc:
            _alert_skipped(version, exc, days)
            continue
        created.append(
            fairness_audit_create(
                version=version,
                source=source,
                attributes=attributes,
                period_start=start,
                period_end=end,
                trigger=Trigger.SCHEDULE,
            )
        )
    return created


def _alert_skipped(version: MLModelVersion, exc: AuditInputError, days: int) -> None:
    alert_raise(
        model=version.model,
        version=version,
        kind="fairness",
        severity="warning",
        dedupe_key=_dedupe_key(version),
        title=f"Scheduled fairness audit of {version} skipped: nothing to audit"[:300],
        details={"reason": exc.message, "days": days},
    )
