"""Alert lifecycle: raise (with dedupe and cooldown), auto-clear, acknowledge, resolve.

One condition has one dedupe key (``drift:<version>:<feature>``, ``performance:...``).
While an alert with that key is open or acknowledged, a repeat updates it
(last_seen, count, severity) instead of adding a row; a partial unique index
(``one_active_alert_per_key``) makes a second live row impossible even under
concurrent jobs. A condition that comes back within ``ALERT_COOLDOWN_MINUTES`` of
its resolution reopens the same alert without a new notification, so a flapping
condition does not page anyone twice. A live alert resolves itself after
``ALERT_CLEAR_WINDOWS`` consecutive clear windows (``alert_clear``).

Notifications (email to the alert's audience, Slack-compatible webhook) go out
after commit for new alerts and for escalations to critical. Every state change
is an audit event.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import audit_record
from core.models import TaskDelivery
from core.notifications import notification_queue
from core.roles import ANALYST, APPROVER
from monitoring.models import Alert
from registry.services import GovernanceError

Status = Alert.Status
SEVERITY_RANK: dict[str, int] = {
    Alert.Severity.INFO: 0,
    Alert.Severity.WARNING: 1,
    Alert.Severity.CRITICAL: 2,
}
NOTIFY_ROLES = (ANALYST, APPROVER)


def cooldown() -> timedelta:
    return timedelta(minutes=settings.ALERT_COOLDOWN_MINUTES)


def clear_windows_needed() -> int:
    return settings.ALERT_CLEAR_WINDOWS


def _check(kind: str, severity: str, dedupe_key: str, title: str) -> None:
    if severity not in SEVERITY_RANK:
        raise ValueError(f"severity must be one of {sorted(SEVERITY_RANK)}, got {severity!r}")
    if not kind or not dedupe_key or not title:
        raise ValueError("kind, dedupe_key and title are required")
    if len(dedupe_key) > 200 or len(title) > 300 or len(kind) > 32:
        raise ValueError("kind, dedupe_key or title is too long")


def alert_raise(
    *,
    model,
    version=None,
    kind: str,
    severity: str,
    dedupe_key: str,
    title: str,
    details: dict | None = None,
    at: datetime | None = None,
) -> Alert:
    """Open an alert for a condition, or update the live one with the same dedupe key.

    ``at`` is when the condition was observed (the end of a drift window for a
    backfill); it defaults to now.
    """
    _check(kind, severity, dedupe_key, title)
    at = at or timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                return _raise_once(model, version, kind, severity, dedupe_key, title, details, at)
        except IntegrityError:
            # A concurrent job created the live row first: loop and update it.
            continue
    raise RuntimeError(f"could not raise alert {dedupe_key!r}")


def _raise_once(model, version, kind, severity, dedupe_key, title, details, at) -> Alert:
    live = (
        Alert.objects.select_for_update()
        .filter(dedupe_key=dedupe_key, status__in=Alert.ACTIVE)
        .first()
    )
    if live is not None:
        return _repeat(live, severity, title, details, at, reopened=False)
    recent = (
        Alert.objects.select_for_update()
        .filter(dedupe_key=dedupe_key, status=Status.RESOLVED, resolved_at__gte=at - cooldown())
        .order_by("-resolved_at")
        .first()
    )
    if recent is not None:
        return _repeat(recent, severity, title, details, at, reopened=True)
    alert = Alert.objects.create(
        model=model,
        version=version,
        kind=kind,
        severity=severity,
        dedupe_key=dedupe_key,
        title=title,
        details=details or {},
        first_seen=at,
        last_seen=at,
    )
    _audit(alert, "alert.raised", payload={"severity": severity, "details": alert.details})
    _notify(alert, "alert.raised", f"[{severity}] {title}")
    return alert


def _repeat(alert: Alert, severity, title, details, at, *, reopened: bool) -> Alert:
    escalated = SEVERITY_RANK[severity] > SEVERITY_RANK[alert.severity]
    previous = {"status": alert.status, "severity": alert.severity}
    alert.severity = severity
    alert.title = title
    alert.details = details or alert.details
    alert.last_seen = max(alert.last_seen, at)
    alert.count += 1
    alert.clear_windows = 0
    fields = ["severity", "title", "details", "last_seen", "count", "clear_windows"]
    if reopened:
        alert.status = Status.OPEN
        alert.resolved_at = None
        alert.resolved_by = None
        alert.acknowledged_by = None
        alert.acknowledged_at = None
        fields += ["status", "resolved_at", "resolved_by", "acknowledged_by", "acknowledged_at"]
    alert.save(update_fields=fields)
    if reopened or escalated or previous["severity"] != severity:
        action = "alert.reopened" if reopened else "alert.severity_changed"
        _audit(alert, action, payload={"previous": previous, "severity": severity})
    if escalated and severity == Alert.Severity.CRITICAL:
        _notify(alert, "alert.escalated", f"[critical] {title} (escalated)")
    return alert


@transaction.atomic
def alert_task_quarantined(*, model, version=None, delivery: TaskDelivery) -> Alert:
    """The critical alert of a task body quarantined after killing its worker
    (core.quarantine): it names the task, the object and the deaths."""
    return alert_raise(
        model=model,
        version=version,
        kind="quarantine",
        severity=Alert.Severity.CRITICAL,
        dedupe_key=f"quarantine:{delivery.key}"[:200],
        title=f"Quarantined {delivery.task} on {delivery.label}: {delivery.reason}"[:300],
        details={
            "task": delivery.task,
            "key": delivery.key,
            "object": delivery.label,
            "attempts": delivery.attempts,
            "reason": delivery.reason,
        },
    )


def alert_clear(*, dedupe_key: str, at: datetime | None = None) -> Alert | None:
    """Record one clear window for the live alert with this key; resolve it after
    ``ALERT_CLEAR_WINDOWS`` consecutive clear windows. No live alert: nothing to do."""
    alert = (
        Alert.objects.select_for_update()
        .filter(dedupe_key=dedupe_key, status__in=Alert.ACTIVE)
        .first()
    )
    if alert is None:
        return None
    at = at or timezone.now()
    if at <= alert.last_seen:
        # A backfill of an older window must not clear a condition seen later.
        return alert
    alert.clear_windows += 1
    fields = ["clear_windows"]
    if alert.clear_windows >= clear_windows_needed():
        alert.status = Status.RESOLVED
        alert.resolved_at = at
        alert.resolved_by = None
        fields += ["status", "resolved_at", "resolved_by"]
    alert.save(update_fields=fields)
    if alert.status == Status.RESOLVED:
        _audit(alert, "alert.auto_resolved", payload={"clear_windows": alert.clear_windows})
    return alert


@transaction.atomic
def alert_acknowledge(*, alert: Alert, user) -> Alert:
    """Someone is on it; idempotent. A resolved alert cannot be acknowledged."""
    now = timezone.now()
    claimed = Alert.objects.filter(pk=alert.pk, status=Status.OPEN).update(
        status=Status.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=now
    )
    alert.refresh_from_db()
    if claimed:
        _audit(alert, "alert.acknowledged", actor=user)
    elif alert.status == Status.RESOLVED:
        raise GovernanceError(
            "this alert is already resolved", {"alert": alert.pk, "status": alert.status}, 409
        )
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, user, note: str = "") -> Alert:
    """Close an alert by hand; idempotent (resolving a resolved alert changes nothing)."""
    now = timezone.now()
    claimed = Alert.objects.filter(pk=alert.pk, status__in=Alert.ACTIVE).update(
        status=Status.RESOLVED, resolved_at=now, resolved_by=user
    )
    alert.refresh_from_db()
    if claimed:
        _audit(alert, "alert.resolved", actor=user, payload={"note": note} if note else None)
    return alert


def _audit(alert: Alert, action: str, actor=None, payload: dict | None = None) -> None:
    base = {"dedupe_key": alert.dedupe_key, "kind": alert.kind, "status": alert.status}
    audit_record(
        action=action,
        actor=actor,
        obj=alert,
        model_name=alert.model.name,
        payload={**base, **(payload or {})},
    )


def _notify(alert: Alert, event: str, subject: str) -> None:
    version = alert.version.version if alert.version is not None else None
    link = f"{settings.SITE_URL.rstrip('/')}/monitoring/{alert.model.name}/"
    body = (
        f"{alert.title}\nmodel {alert.model.name}"
        + (f" {version}" if version else "")
        + f", severity {alert.severity}, first seen {alert.first_seen:%Y-%m-%d %H:%M} UTC\n{link}"
    )
    notification_queue(
        event=event,
        subject=subject,
        body=body,
        roles=NOTIFY_ROLES,
        payload={
            "alert": alert.pk,
            "model": alert.model.name,
            "version": version,
            "kind": alert.kind,
            "severity": alert.severity,
            "dedupe_key": alert.dedupe_key,
            "details": alert.details,
        },
    )
