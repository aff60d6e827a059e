"""The outbox sweep: notifications left pending are found; sent or fresh ones are not."""

from datetime import timedelta

from django.utils import timezone

from core.models import Notification
from core.notifications import notifications_pending


def test_the_sweep_finds_notifications_left_pending(db, settings):
    settings.PENDING_REQUEUE_SECONDS = 300
    old = timezone.now() - timedelta(minutes=6)
    rows = {
        status: Notification.objects.create(event="e", subject=status, body="b", status=status)
        for status in ("pending", "sending", "sent", "failed")
    }
    fresh = Notification.objects.create(event="e", subject="fresh", body="b")
    Notification.objects.exclude(pk=fresh.pk).update(created_at=old)
    assert notifications_pending() == [rows["pending"].pk]
