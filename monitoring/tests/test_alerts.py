"""Alert lifecycle: dedupe, cooldown, auto-resolve, acknowledge/resolve, audit, notifications."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent, Notification
from monitoring.alerts import alert_acknowledge, alert_clear, alert_raise, alert_resolve
from monitoring.models import Alert
from registry.services import GovernanceError

pytestmark = pytest.mark.django_db


def raise_drift(model, at, severity="warning", key="drift:1:bytes_out"):
    return alert_raise(
        model=model,
        kind="drift",
        severity=severity,
        dedupe_key=key,
        title="bytes_out drifted",
        details={"psi": 0.4},
        at=at,
    )


def test_it_updates_the_open_alert_instead_of_adding_one(model, analyst):
    t0 = timezone.now() - timedelta(hours=5)
    first = raise_drift(model, t0)
    again = raise_drift(model, t0 + timedelta(hours=1), severity="critical")
    assert again.pk == first.pk
    assert Alert.objects.count() == 1
    again.refresh_from_db()
    assert (again.count, again.severity) == (2, "critical")
    assert again.first_seen == t0 and again.last_seen == t0 + timedelta(hours=1)
    # One notification for the new alert, one for the escalation to critical.
    assert list(Notification.objects.order_by("id").values_list("event", flat=True)) == [
        "alert.raised",
        "alert.escalated",
    ]
    assert Notification.objects.first().payload["dedupe_key"] == "drift:1:bytes_out"
    assert analyst.email in Notification.objects.first().recipients


def test_it_deduplicates_an_acknowledged_alert_too(model, analyst):
    alert = raise_drift(model, timezone.now() - timedelta(hours=2))
    alert_acknowledge(alert=alert, user=analyst)
    again = raise_drift(model, timezone.now() - timedelta(hours=1))
    assert again.pk == alert.pk and again.status == "acknowledged" and again.count == 2


def test_it_resolves_itself_after_enough_clear_windows(model, settings):
    settings.ALERT_CLEAR_WINDOWS = 3
    t0 = timezone.now() - timedelta(hours=10)
    alert = raise_drift(model, t0)
    for hour in (1, 2):
        assert alert_clear(dedupe_key=alert.dedupe_key, at=t0 + timedelta(hours=hour)).status == (
            "open"
        )
    # The condition came back: the clear streak starts again.
    raise_drift(model, t0 + timedelta(hours=3))
    for hour in (4, 5):
        alert_clear(dedupe_key=alert.dedupe_key, at=t0 + timedelta(hours=hour))
    alert.refresh_from_db()
    assert alert.status == "open" and alert.clear_windows == 2
    resolved = alert_clear(dedupe_key=alert.dedupe_key, at=t0 + timedelta(hours=6))
    assert resolved.status == "resolved" and resolved.resolved_by is None
    assert resolved.resolved_at == t0 + timedelta(hours=6)
    assert AuditEvent.objects.filter(action="alert.auto_resolved", object_id=str(alert.pk)).exists()
    assert alert_clear(dedupe_key=alert.dedupe_key) is None


def test_a_backfilled_older_window_does_not_clear_a_newer_condition(model):
    t0 = timezone.now() - timedelta(hours=10)
    alert = raise_drift(model, t0)
    alert_clear(dedupe_key=alert.dedupe_key, at=t0 - timedelta(hours=1))
    alert.refresh_from_db()
    assert alert.clear_windows == 0


def test_a_repeat_within_the_cooldown_reopens_without_a_new_notification(model, settings):
    settings.ALERT_COOLDOWN_MINUTES = 120
    settings.ALERT_CLEAR_WINDOWS = 1
    t0 = timezone.now() - timedelta(hours=10)
    alert = raise_drift(model, t0)
    alert_clear(dedupe_key=alert.dedupe_key, at=t0 + timedelta(hours=1))
    reopened = raise_drift(model, t0 + timedelta(hours=2))
    assert reopened.pk == alert.pk and reopened.status == "open" and reopened.count == 2
    assert Notification.objects.count() == 1
    assert AuditEvent.objects.filter(action="alert.reopened").count() == 1
    # After the cooldown a new alert (and a new notification) is due.
    alert_clear(dedupe_key=alert.dedupe_key, at=t0 + timedelta(hours=3))
    fresh = raise_drift(model, t0 + timedelta(hours=6))
    assert fresh.pk != alert.pk
    assert Notification.objects.count() == 2


def test_acknowledge_and_resolve_are_audited_and_idempotent(model, analyst):
    alert = raise_drift(model, timezone.now())
    alert_acknowledge(alert=alert, user=analyst)
    alert_acknowledge(alert=alert, user=analyst)
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1
    done = alert_resolve(alert=alert, user=analyst)
    alert_resolve(alert=alert, user=analyst)
    assert done.status == "resolved" and done.resolved_by == analyst
    assert AuditEvent.objects.filter(action="alert.resolved", actor=analyst).count() == 1
    with pytest.raises(GovernanceError) as exc:
        alert_acknowledge(alert=alert, user=analyst)
    assert exc.value.status == 409


def test_it_refuses_an_unknown_severity(model):
    with pytest.raises(ValueError):
        raise_drift(model, timezone.now(), severity="panic")
    assert not Alert.objects.exists()
